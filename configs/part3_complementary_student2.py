r"""Complementary labels, a second student: a new network learns the first student's answers.

    python -m jaxdigits.train --config configs/part3_complementary_student2.py \
        --workdir ckpts/part3_complementary_student2

configs/part3_complementary_student.py, with the teacher one generation on: the student run
kept in results/runs/part3_complementary_student (itself taught by the complementary-label
run part3_complementary_strong). Its answer for each image of the mislabeled pool is the
class of the highest probability averaged over its three seeds, never the image's
complementary label. The same fresh network, augmentation, loss and 15-epoch schedule per
seed (0, 10, 42); the last params are the result. No true label enters training or selection.
"""

import pathlib

from jaxdigits import defaults

TEACHER = pathlib.Path(__file__).resolve().parents[1] / "results/runs/part3_complementary_student"


def get_config(arg=None):
    c = defaults.from_file(pathlib.Path(__file__).with_name("part3_complementary_student.py"), arg)
    c.teacher = str(TEACHER)
    return c

r"""Complementary labels, a student: a new network learns the teacher's answers from scratch.

    python -m jaxdigits.train --config configs/part3_complementary_student.py \
        --workdir ckpts/part3_complementary_student

The teacher is the complementary-label run kept in results/runs/part3_complementary_strong
(every label it learnt from was a wrong one). Its answer for each image of the mislabeled pool
is the class of the highest probability averaged over its three seeds, never the image's
complementary label (jaxdigits/teacher.py). A fresh
network per seed (0, 10, 42; the same 28x28 CNN) trains 15 epochs with plain cross-entropy on
those answers under Part 1's augmentation, milder (rotation up to 10 degrees, translation up
to 8 %, blur, noise 0.05): the student sees each image distorted, the teacher saw it nearly
clean. Adam 2e-3, cosine to 0, batch 128; the last params are the result. Validation accuracy
is agreement with the teacher. No true label enters training or selection.
"""

import pathlib

from jaxdigits import defaults

TEACHER = pathlib.Path(__file__).resolve().parents[1] / "results/runs/part3_complementary_strong"


def get_config(arg=None):
    c = defaults.from_file(pathlib.Path(__file__).with_name("part3_complementary_cnn.py"), arg)
    c.task = "classify"
    c.teacher = str(TEACHER)
    c.loss.selftrain_threshold = 0.0
    c.decodes = ("argmax", "shifts")
    d = c.data
    d.shift = 0  # the augmentation translates
    d.augment = True
    d.rotation_deg, d.translate, d.noise_std = 10.0, 0.08, 0.05
    return c

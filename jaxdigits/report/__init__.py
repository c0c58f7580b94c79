"""Reading finished runs back: the report, its figures, the analysis of the mislabeled set,
and the original studies' published numbers."""

"""Accuracy evaluation: the cross-age identification protocol of ../shared/data/README.md."""

"""The paper's experiments as runnable commands (``rewa reproduce ...``)."""

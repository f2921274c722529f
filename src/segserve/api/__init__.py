"""The HTTP contract of a model worker: the request schema, the error boundary, one service per action."""

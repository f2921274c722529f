"""A model worker's request path: the error boundary (invocation), one service per action, the sam2 client."""

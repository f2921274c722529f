"""segserve-deploy: put segserve on Amazon SageMaker (ECR image, model data, endpoint, batch transform, teardown).

A top-level package beside src/segserve: it imports segserve (the client), never the other way round, and it is
not shipped in the container image.
"""

"""The wire contract, torch-free: what clients send and get back, and nothing else.

Content types and headers (wire), the error envelope (errors), the request models (requests), the typed answer
models (responses), SageMaker sessions (sessions) and the OpenAPI document generated from them (openapi).
Every other package imports this one; it imports no other segserve package, so a client, the router and the
docs can use it without loading a model (tests/unit/test_architecture.py holds it to that).
"""

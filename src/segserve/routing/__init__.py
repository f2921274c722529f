"""The router model: forwards each request by action to the model that serves it, over loopback."""

"""The models: SAM2 (encode once, decode many prompts), GroundingDINO, Lang-SAM over both, and their runtime."""

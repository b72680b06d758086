"""integrations: the project on Hugging Face models through TRL (integrations/README.md)."""

"""Request signature verification (AWS SigV4, SigV4 streaming, SigV2); pure, no Twisted."""

"""Real servers and faithful fakes the keystore tests talk to over real HTTPS."""

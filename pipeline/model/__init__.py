"""ECGAN / SPADE networks and losses in Jittor."""

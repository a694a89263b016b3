"""Test helpers of the card agent, the gateway and the TSA: shared PKI, reference peers,
the virtual IC card that plugs into vpcd."""

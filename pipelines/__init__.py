"""Central business logic. Pure rules over (state, command) → events or a
rejection citing rule IDs; thin handlers that load state, decide and emit."""

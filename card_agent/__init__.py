"""The card agent (ICカードエージェント): IC-card signing on the contractor's PC.

It reads the IC card over PC/SC (:mod:`.pcsc`) or a vendor's PKCS#11 module
(:mod:`.pkcs11_backend`), behind one interface (:mod:`.card`); asks for the PIN and never
stores, logs or retries it (PIN-1); signs PDFs as PAdES B-T (:mod:`.signing`); and talks
to the hub's gateway over HTTP (:mod:`.client`). The PIN and the private key never leave
this PC. Console script: ``card-agent`` (:mod:`.cli`).
"""

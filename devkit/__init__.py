"""What development, the demo, the reference peers and the tests need and production never
does: the project's test PKI (:mod:`devkit.pki`).

Kept out of the production packages: only the demo and development paths of the hub, the
reference peers and the tests import it (tests/unit/test_layering.py names them), and
production mode refuses what it issues (``hub.production``). It imports none of the
project's other packages.
"""

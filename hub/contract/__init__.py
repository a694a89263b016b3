"""The hub's side of the contract process (CON-1 … CON-7): what needs the hub itself.

The process manager's pure logic, store and handler live in :mod:`pipelines.contract`;
here are the parts that use the hub's outbox, the card gateway's signing jobs and its
HTTP app: the scheduled jobs (:mod:`.jobs`), the staff archive router
(:mod:`.archive_api`), the contractor's review page (:mod:`.review_api`) and the
consumers and jobs the default wiring runs (:mod:`.wiring`).
"""

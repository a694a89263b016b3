"""A sample procurement case driven through the running hub: the main job's story.

:mod:`.case` holds the facts of one case and renders its documents, :mod:`.timeline`
follows the case's events back from Kafka, :mod:`.driver` plays every person and
outside system of the case (the city's staff over the staff API, the contractor with
the card agent and its IC card, the surety company on D・Sure) step by step. ``hub
demo`` runs it once on the embedded default; the end-to-end tests and the cases/s
benchmark run it against their own hubs.
"""

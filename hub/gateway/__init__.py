"""HTTP gateway of the hub for card agents (issue 4): challenge/response login with the
IC card, registration/change/renewal submission, signing jobs, and validation of the
PDFs signed at the edge (:mod:`.validation`)."""

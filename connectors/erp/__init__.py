"""ERP connector (SOAP, zeep): registers contracts, advance-payment requests and payment
requests in the municipal ERP (財務会計), idempotent on the business key.

Consumes ``Topics.ERP_COMMANDS`` (ErpRegistrationRequested) through
:meth:`ErpConnector.register`; the hub publishes the ErpRegistered to
``Topics.ERP_EVENTS``. The reference peer is a spyne SOAP service with a WSDL
(:mod:`.peer`, :mod:`.service`).
"""

from connectors.erp.connector import ErpConnector
from connectors.erp.mapping import rejection_for
from connectors.erp.settings import SHIPPED_WSDL, ErpSettings

__all__ = ["SHIPPED_WSDL", "ErpConnector", "ErpSettings", "rejection_for"]

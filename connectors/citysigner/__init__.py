"""The city's own signer (発注者の電子署名): PAdES B-LT through PKCS#11 (CON-2, CON-5, CON-7).

The city's key stays in its token (an HSM or signing card behind a PKCS#11 module;
SoftHSM2 in tests). :class:`CitySigner` signs the contractor-signed contract with
pyHanko's PKCS#11 signer, a signature timestamp from the TSA connector (RFC 3161,
:class:`connectors.tsa.HubTimeStamper`) and the validation data embedded in the
document's DSS (ETSI EN 319 142-1 baseline B-LT), so the signed PDF can be validated
long after. :func:`validate_contract_pdf` re-validates every signature of a stored
contract (CON-5: any edit invalidates). Modules: settings, signer, verify.
"""

from connectors.citysigner.settings import CitySignerSettings
from connectors.citysigner.signer import CitySigner, CitySignerError
from connectors.citysigner.verify import (
    SignatureReport,
    ValidationReport,
    async_validate_contract_pdf,
    validate_contract_pdf,
)

__all__ = [
    "CitySigner",
    "CitySignerError",
    "CitySignerSettings",
    "SignatureReport",
    "ValidationReport",
    "async_validate_contract_pdf",
    "validate_contract_pdf",
]

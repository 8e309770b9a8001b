"""The TWS error codes the simulator produces, their text, and their side effects."""

from __future__ import annotations

#: The text TWS sends with each error code the simulator can produce.
ERROR_MESSAGES: dict[int, str] = {
    101: "Max number of tickers has been reached",
    103: "Duplicate order id",
    200: "No security definition has been found for the request",
    201: "Order rejected - reason:Simulated rejection",
    202: "Order Canceled - reason:",
    321: "Error validating request.-'bN' : cause - Simulated validation failure",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
    2105: "HMDS data farm connection is broken:ushmds",
    2106: "HMDS data farm connection is OK:ushmds",
    2158: "Sec-def data farm connection is OK:secdefnj",
    10147: "OrderId {order_id} that needs to be cancelled is not found.",
    10148: "OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {state}.",
    10197: "No market data during competing live session",
}

#: Codes after which a real gateway stops streaming market data…
HALTING_CODES = frozenset({1100, 2103, 10197})
#: …and the codes after which it streams again.
RESUMING_CODES = frozenset({1101, 1102, 2104})
#: After this one TWS has dropped every market data subscription: clients
#: must subscribe again (``ib_async`` does not do it for them).
DATA_LOST_CODE = 1101


def error_text(code: int) -> str:
    """The text for ``code`` (a generic one for codes not in the table)."""
    return ERROR_MESSAGES.get(code, f"Simulated error {code}")

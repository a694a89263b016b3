"""What can go wrong with the IC card, said so the contractor knows what to do.

Every error carries a :class:`~card_agent.wire.RuleViolation` (rule ID, Japanese and
English text, next step). PIN-1: the retries left are shown, a PIN is never retried
automatically, a locked card says that unlocking takes the CA days. No error text ever
holds the PIN.
"""

from __future__ import annotations

from card_agent.wire import RuleViolation

__all__ = [
    "CardError",
    "CardLockedError",
    "CardProtocolError",
    "CardRemovedError",
    "NoCardError",
    "WrongPinError",
]


class CardError(Exception):
    """Base of the card errors; ``violation`` is what the agent shows."""

    def __init__(self, violation: RuleViolation) -> None:
        super().__init__(f"{violation.rule_id}: {violation.message_en}")
        self.violation = violation


class NoCardError(CardError):
    """No reader, or no card in the reader."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(RuleViolation(
            rule_id="PIN-2",
            message_ja="ICカードが見つかりません。" + (f"({detail})" if detail else ""),
            message_en="No IC card found." + (f" ({detail})" if detail else ""),
            next_step_ja="カードリーダーを接続し、ICカードを差し込んでからやり直してください。",
            next_step_en="Connect the card reader, insert the IC card and try again.",
        ))


class CardRemovedError(CardError):
    """The card left the reader during an operation; nothing was signed."""

    def __init__(self) -> None:
        super().__init__(RuleViolation(
            rule_id="PIN-2",
            message_ja="処理中にICカードが抜かれました。署名は行われていません。",
            message_en="The IC card was removed during the operation; nothing was signed.",
            next_step_ja="ICカードを差し込み直し、最初からやり直してください。",
            next_step_en="Insert the IC card again and start over.",
        ))


class WrongPinError(CardError):
    """The PIN was wrong; ``retries_left`` more wrong PINs lock the card (PIN-1).

    ``retries_left`` is None when the backend cannot tell (PKCS#11 without the flags).
    """

    def __init__(self, retries_left: int | None) -> None:
        self.retries_left = retries_left
        if retries_left is None:
            left_ja = "誤入力が続くとICカードがロックされます。"
            left_en = "More wrong PINs will lock the IC card."
        else:
            left_ja = f"残り{retries_left}回間違えるとICカードがロックされます。"
            plural = "s" if retries_left != 1 else ""
            left_en = f"{retries_left} more wrong PIN{plural} will lock the IC card."
        super().__init__(RuleViolation(
            rule_id="PIN-1",
            message_ja="PINが正しくありません。" + left_ja,
            message_en="Wrong PIN. " + left_en,
            next_step_ja="PINを確認してから入力し直してください(自動で再試行はしません)。",
            next_step_en="Check the PIN before typing it again "
                         "(it is never retried automatically).",
        ))


class CardLockedError(CardError):
    """The PIN is blocked: the card cannot sign until its CA unlocks it (PIN-1)."""

    def __init__(self) -> None:
        super().__init__(RuleViolation(
            rule_id="PIN-1",
            message_ja="PINの誤入力が続いたため、ICカードがロックされています。",
            message_en="The IC card is locked after too many wrong PINs.",
            next_step_ja="認証局(ICカードの発行元)にロック解除を依頼してください。解除には数日かかります。",
            next_step_en="Ask the certification authority that issued the card to unlock it; "
                         "this takes several days.",
        ))


class CardProtocolError(CardError):
    """The card answered something the agent did not expect (status word given)."""

    def __init__(self, operation: str, status: int) -> None:
        self.status = status
        super().__init__(RuleViolation(
            rule_id="PIN-2",
            message_ja=f"ICカードが{operation}を拒否しました(SW={status:04X})。",
            message_en=f"The IC card refused {operation} (SW={status:04X}).",
            next_step_ja="対応するICカードか確認してください。解決しない場合は発注者にお問い合わせください。",
            next_step_en="Check that this is a supported IC card; otherwise contact the entity.",
        ))

"""What the surety rules say to people: each rejection with its rule ID (SUR-1 … SUR-3),
the field concerned, expected vs found, in Japanese and English, and what to do next."""

from __future__ import annotations

from datetime import date

from schemas.rejection import RuleViolation
from schemas.text import show_date, show_date_en

__all__ = ["FIELD_LABELS", "form_mixed", "mismatch", "no_notice", "show"]

FIELD_LABELS: dict[str, tuple[str, str]] = {
    "product": ("商品（保証区分）", "product"),
    "procuring_entity_name": ("発注者", "procuring entity (発注者)"),
    "work_name": ("工事名", "work name"),
    "contractor_name": ("受注者（JVの場合は代表者）", "contractor (the JV's representative)"),
    "jv_name": ("JV名", "JV name"),
    "contract_amount": ("請負金額", "contract amount"),
    "guarantee_amount": ("保証金額", "guarantee amount"),
    "guarantee_deadline": ("保証期限", "guarantee deadline"),
    "work_period": ("工期", "work period"),
    "contract_date": ("請負契約日", "contract date"),
    "depository": ("預託金融機関", "depository bank"),
}

_FIX_JA = ("保証会社に保証契約の内容の訂正（変更）を依頼し、訂正後の電子保証の"
           "保証契約番号と認証キーを提出してください。")
_FIX_EN = ("Ask the surety company to correct the guarantee, then submit the corrected "
           "certificate's contract number and key.")


def show(value: object) -> tuple[str, str]:
    """A value as a Japanese reader and an English reader see it (円, 和暦)."""
    if value is None:
        return "（記載なし）", "(none)"
    if isinstance(value, bool):
        return str(value), str(value)
    if isinstance(value, int):
        return f"{value:,}円", f"JPY {value:,}"
    if isinstance(value, date):
        return show_date(value), show_date_en(value)
    if isinstance(value, tuple) and len(value) == 2:
        (a_ja, a_en), (b_ja, b_en) = show(value[0]), show(value[1])
        return f"{a_ja}～{b_ja}", f"{a_en} to {b_en}"
    label = getattr(value, "label_ja", None)
    return (label if isinstance(label, str) else str(value)), str(value)


def mismatch(field: str, expected: object, found: object, *,
             at_least: bool = False) -> RuleViolation:
    """SUR-2: one certificate field differs from the city's contract."""
    label_ja, label_en = FIELD_LABELS[field]
    exp_ja, exp_en = show(expected)
    got_ja, got_en = show(found)
    if at_least:
        ja = f"電子保証の{label_ja}（{got_ja}）が契約で求める{label_ja}（{exp_ja}）より前です。"
        en = (f"The certificate's {label_en} ({got_en}) is before the {label_en} the contract "
              f"requires ({exp_en}).")
    else:
        ja = f"電子保証の{label_ja}が契約内容と一致しません（契約：{exp_ja}／証書：{got_ja}）。"
        en = (f"The certificate's {label_en} does not match the contract "
              f"(contract: {exp_en}; certificate: {got_en}).")
    return RuleViolation(rule_id="SUR-2", message_ja=ja, message_en=en,
                         next_step_ja=_FIX_JA, next_step_en=_FIX_EN, field=field)


def form_mixed(number: str, first_ja: str, first_en: str, now_ja: str,
               now_en: str) -> RuleViolation:
    """SUR-3: within one guarantee contract, electronic and paper never mix."""
    return RuleViolation(
        rule_id="SUR-3",
        message_ja=(f"保証契約番号{number}は{first_ja}で提出されています。同じ保証契約で"
                    f"電子証書と紙の保証証書は混在できません（今回：{now_ja}）。"),
        message_en=(f"Guarantee {number} was first given as a {first_en} certificate; "
                    f"one guarantee contract never mixes electronic and paper "
                    f"(this one: {now_en})."),
        next_step_ja=f"変更の保証証書も最初と同じ形式（{first_ja}）で保証会社に発行を依頼してください。",
        next_step_en=f"Ask the surety company for the change certificate in the first form "
                     f"({first_en}).",
        field="form")


def no_notice(application_id: str) -> RuleViolation:
    """SUR-1: an application said it carries a key notice, but none could be read."""
    return RuleViolation(
        rule_id="SUR-1",
        message_ja=f"申請{application_id}に「電子保証に係る認証キーのお知らせ」が添付されていません。",
        message_en=f"Application {application_id} carries no readable surety key notice.",
        next_step_ja="保証会社から受け取った「認証キーのお知らせ」PDFを添付して再度申請してください。",
        next_step_en="Attach the key notice PDF from the surety company and apply again.",
        field="surety_notices")

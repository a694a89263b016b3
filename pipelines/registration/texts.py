"""What the registration rules say to people: every rejection and warning, in Japanese
and English, with the rule ID (docs/rule-ids.md) and what to do next. Dates come in
filled by ``schemas.text.show_date`` (和暦 with the Western year) and ``show_date_en``."""

from __future__ import annotations

import re
from typing import Any

from schemas import fast
from schemas.rejection import RuleViolation
from schemas.text import LookupHint

__all__ = ["CATALOG", "lookup_not_found", "violation"]

# key: (rule ID, message ja, message en, next step ja, next step en)
CATALOG: dict[str, tuple[str, str, str, str, str]] = {
    "closed": (
        "WIN-1", "{entity}の{system}は現在利用時間外です（{hours}、土日祝日・年末年始を除く）。",
        "The {system_en} of {entity} is closed now ({hours}, not on weekends, national "
        "holidays or 12/29-1/5).",
        "利用時間内に再度操作してください。", "Try again during service hours."),
    "maintenance": (
        "WIN-2", "{entity}の{system}はメンテナンス中です（{start}～{until}）。",
        "The {system_en} of {entity} is in an announced maintenance window until {until_en} "
        "(JST).",
        "{until}以降に再度操作してください。", "Try again after {until_en} (JST)."),
    "unknown-entity": (
        "REG-3", "調達機関「{entity}」の{system}はハブに設定されていません。",
        "The procuring entity {entity!r} has no {system_en} configured in the hub.",
        "調達機関と工事／物品の選択を確認してください。",
        "Check the procuring entity and the domain you chose."),
    "not-authenticated": (
        "PIN-2", "ICカードでの本人確認（PIN入力）が確認できません。",
        "The card was not authenticated with its PIN.",
        "ICカードをカードリーダーに挿入し、PINを入力してからやり直してください。",
        "Insert the card, enter its PIN and try again."),
    "auth-stale": (
        "PIN-2", "ICカードでの本人確認から時間が経ちすぎています。",
        "The card authentication is too old.",
        "もう一度PINを入力してからやり直してください（PINは自動では再入力しません）。",
        "Enter the PIN again and retry (the PIN is never retried automatically)."),
    "not-found": (
        "REG-3", "資格審査情報が登録されていません。",
        "No qualification (資格審査情報) matches what was entered.",
        "", ""),
    "lapsed": (
        "REG-3", "資格審査情報の有効期間が終了しています（{until}まで）。",
        "The qualification ended on {until_en}.",
        "競争入札参加資格を更新してから、新しいユーザIDで利用者登録してください。",
        "Renew the qualification, then register with the new user ID."),
    "password-today": (
        "REG-4", "本日パスワードを変更したため、本日は利用者登録できません。",
        "The password was changed today, so registration is blocked until tomorrow.",
        "明日以降に利用者登録を行ってください。", "Register again tomorrow or later."),
    "card-other-user": (
        "REG-1", "このICカードは既に登録されています（別のユーザIDに登録済み）。",
        "This card is already registered to another user ID.",
        "ICカードは登録したユーザID以外では使えません。正しいICカードを使用してください。",
        "A card can never move to another user ID; use the right card."),
    "card-already": (
        "REG-1", "このICカードは既に登録されています。",
        "This card is already registered here.",
        "連絡先を変える場合は「変更」を、新しいICカードは「登録」または「ICカード更新」を使ってください。",
        "To change contacts use change; for a new card use registration or renewal."),
    "card-revoked": (
        "REG-1", "このICカードはICカード更新により使用できなくなっています。",
        "This card was replaced by a renewal and can no longer be used.",
        "更新後の新しいICカードを使用してください。", "Use the new card from the renewal."),
    "login-unknown": (
        "REG-1", "このICカードは登録されていません。",
        "This IC card is not registered.",
        "利用者登録を行ってから、このICカードでログインしてください。",
        "Register the card first, then log in with it."),
    "login-not-here": (
        "REG-1", "このICカードは{entity}の{domain}に登録されていません。",
        "This IC card is not registered for {domain_en} at {entity}.",
        "{entity}で利用者登録を行うか、他の調達機関での登録が反映される翌日以降にログインしてください。",
        "Register the card at {entity}, or log in after another entity's registration "
        "has reached it (the next day)."),
    "login-other-domain": (
        "CHG-2",
        "このICカードは{entity}の{domain}には登録されていません（工事と物品はそれぞれ登録します）。",
        "This IC card is not registered for {domain_en} at {entity}: works and goods are "
        "registered separately.",
        "{domain}で利用者登録を行うか、登録済みの区分を選んでログインしてください。",
        "Register the card for {domain_en}, or log in for the domain it is registered in."),
    "login-renewed": (
        "RNW-7", "このICカードはICカード更新により使用できなくなっています。",
        "This IC card was replaced by a renewal and can no longer be used.",
        "更新後の新しいICカードでログインしてください。",
        "Log in with the new card from the renewal."),
    "card-not-yet-valid": (
        "REG-6", "ICカードの有効期間が始まっていません（{start}から）。",
        "The card is not valid yet (from {start_en}).",
        "有効期間の開始後に登録してください。", "Register once the card is valid."),
    "card-expired": (
        "REG-6", "ICカードの有効期限が切れています（{end}）。",
        "The card expired on {end_en}.",
        "認証局で新しいICカードを取得し、利用者登録してください。",
        "Obtain a new card from the certification authority and register it."),
    "low-validity": (
        "REG-6", "ICカードの有効期限（{end}）まで残り{days}日です。",
        "The card expires on {end_en}: {days} days left.",
        "新しいICカードの取得を準備し、期限までに間に合わない場合は紙入札について調達機関にご相談ください。",
        "Prepare a new card; if it will not arrive in time, ask the entity about paper bidding."),
    "holder": (
        "REG-5",
        "ICカードの名義人（{holder}）が資格審査情報の契約者（{contractor}）と一致しません。",
        "The card holder ({holder}) is not the contractor of the qualification ({contractor}).",
        "競争入札参加資格の「契約者」名義のICカードを使用してください{rep_ja}。",
        "Use a card in the contractor's name{rep_en}."),
    "email-twice": (
        "REG-7", "{which}のメールアドレスと再入力が一致しません。",
        "The {which_en} e-mail address and its confirmation differ.",
        "同じメールアドレスを2回正しく入力してください。", "Type the same address twice."),
    "representative-required": (
        "REG-7", "初回登録のため代表窓口情報が必要です。",
        "This user ID's first registration needs the 代表窓口 (main contact) data.",
        "代表窓口情報を入力してください。", "Fill in the main contact."),
    "representative-fixed": (
        "REG-8", "再取得したICカードの登録では代表窓口情報を変更できません。",
        "Registering a re-issued card cannot change the main contact (代表窓口).",
        "まず登録を行い、その後「変更」で代表窓口情報を変更してください。",
        "Register first, then change the main contact with a change."),
    "propagate-target": (
        "{rule}",
        "即時反映先の調達機関「{target}」には反映できません（資格がないか、未登録です）。",
        "Cannot apply it at once at {target!r}: not qualified or not registered there.",
        "反映先の選択を外すか、資格のある調達機関を選んでください。",
        "Remove that entity or choose one where the company is qualified."),
    "reissue-confirm": (
        "REG-11",
        "この会社は既に登録されています（{ids}）。新しいICカードは「ICカード更新」で登録してください。"
        "新規登録すると受注者番号が重複し、修正に時間がかかります。",
        "This company is already registered ({ids}). Register a new card by renewal: a new "
        "registration issues a second contractor number that needs manual repair.",
        "ICカード更新を行ってください。どうしても新規登録する場合は確認のうえ再度承認してください。",
        "Use card renewal; to register anyway, confirm explicitly."),
    "held-rejected": (
        "REG-11", "確認待ちの利用者登録は、調達機関が御社に確認のうえ登録しないことにしました。",
        "The procuring entity checked the held registration with your company and did not "
        "register it.",
        "既に登録済みの会社の新しいICカードは「ICカード更新」で登録してください。別の会社として"
        "登録する必要がある場合は、調達機関の担当者に連絡してください。",
        "Register a new card of a company already registered by card renewal; if it must "
        "be registered as another company, contact the procuring entity's staff."),
    "no-confirmation": (
        "REG-11", "確認待ちの登録が見つかりません。",
        "No registration is waiting for this confirmation.",
        "登録からやり直してください。", "Start the registration again."),
    "change-not-registered": (
        "CHG-1", "このICカードは{entity}の{domain}に登録されていません。",
        "This card is not registered for {domain_en} at {entity}.",
        "登録済みのICカードで本人確認して変更してください。",
        "Authenticate with a registered card to change its contacts."),
    "change-other-domain": (
        "CHG-2",
        "このICカードは{domain}には登録されていません（工事と物品はそれぞれ登録・変更します）。",
        "This card is not registered for {domain_en}: works and goods are registered "
        "and changed separately.",
        "{domain}で利用者登録してください。", "Register the card for {domain_en} first."),
    "change-card-revoked": (
        "RNW-7", "このICカードはICカード更新済みのため使用できません。",
        "This card was replaced by a renewal and is no longer usable.",
        "更新後のICカードで本人確認して変更してください。",
        "Authenticate with the card it was renewed to and change the contacts with it."),
    "change-card-invalid": (
        "CHG-1", "有効期間内のICカードで本人確認してください（{end}）。",
        "Authenticate with a card inside its validity ({end_en}).",
        "有効なICカードを使用してください。", "Use a valid card."),
    "change-email-twice": (
        "CHG-4", "確認メールの送信先（ICカード利用部署）のメールアドレスと再入力が一致しません。",
        "The card department e-mail (where the confirmation goes) and its confirmation differ.",
        "同じメールアドレスを2回正しく入力してください。", "Type the same address twice."),
    "old-card-expired": (
        "RNW-1", "旧ICカードの有効期限が切れています（{end}）。ICカード更新はできません。",
        "The old card expired on {end_en}: it cannot be renewed.",
        "新しいICカードを「登録」で登録してください。", "Register the new card instead."),
    "old-card-unknown": (
        "RNW-1", "旧ICカードが{entity}の{domain}に登録されていません。",
        "The old card is not registered for {domain_en} at {entity}.",
        "新しいICカードを「登録」で登録してください。", "Register the new card instead."),
    "user-id-changed": (
        "RNW-2", "ユーザID（{user_id}）が旧ICカードのユーザID（{old_user_id}）と異なります。",
        "The user ID {user_id} is not the old card's user ID {old_user_id}.",
        "権限委譲・合併・資格失効でユーザIDが変わった場合は、新しいユーザIDで「登録」してください。",
        "After a delegation, merger or lapsed qualification, register with the new user ID."),
    "user-id-lapsed": (
        "RNW-2", "ユーザID（{user_id}）の資格審査情報がありません（失効または未登録）。",
        "The user ID {user_id} has no current qualification (lapsed or unknown).",
        "新しいユーザIDで「登録」してください。失効したユーザIDで更新すると新しいICカードも使えません。",
        "Register with the new user ID: renewing under a lapsed ID leaves the new card unusable."),
    "company-changed": (
        "RNW-3", "新旧ICカードの{what}が異なります。",
        "The old and new cards differ in {what_en}.",
        "名義人・本社住所等の企業情報が変わった場合は「登録」で登録してください。",
        "When the holder or head-office data changed, register the new card instead."),
    "new-holder": (
        "RNW-4",
        "新しいICカードの名義人（{holder}）が資格審査情報の契約者（{contractor}）と一致しません。",
        "The new card's holder ({holder}) is not the contractor ({contractor}).",
        "正しい名義のICカードを使用してください。", "Use a card in the right name."),
    "other-ca": (
        "RNW-5", "新旧ICカードの認証局が異なります。",
        "The old and new cards are from different certification authorities.",
        "認証局が異なる場合は「登録」で登録してください。", "Register the new card instead."),
    "renew-auth": (
        "RNW-6", "旧ICカード、新ICカードの順にPINで本人確認してください（{which}）。",
        "Authenticate the old card first, then the new card, with their PINs ({which_en}).",
        "旧ICカードからPIN入力をやり直してください。", "Start again with the old card's PIN."),
    "old-card-revoked": (
        "RNW-7", "旧ICカードは既にICカード更新済みで使用できません。",
        "The old card was already replaced by a renewal and is no longer usable.",
        "更新後のICカードを使用してください。", "Use the card it was renewed to."),
}


_RULE_ID = re.compile(r"(REG|CHG|RNW|PIN|WIN|SUR|CON|INV|NTF|IAM)-\d{1,2}")
"""schemas.rejection.RuleId's pattern."""
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")

# Per catalog key: the entry it was checked for, and which of its five texts are templates.
_checked: dict[str, tuple[tuple[str, str, str, str, str], tuple[bool, ...]]] = {}


def _templates(key: str) -> tuple[tuple[str, str, str, str, str], tuple[bool, ...]]:
    entry = CATALOG[key]
    known = _checked.get(key)
    if known is None or known[0] is not entry:
        # Checked once per entry what RuleViolation would check on every call: a rule ID
        # that is not a template is a valid one, and the messages are never empty.
        rule, ja, en = entry[:3]
        if "{" not in rule and not _RULE_ID.fullmatch(rule):
            raise ValueError(f"catalog {key!r}: {rule!r} is not a rule ID")
        if not (_PLACEHOLDER.sub("", ja).strip() and _PLACEHOLDER.sub("", en).strip()):
            raise ValueError(f"catalog {key!r}: a message has no text of its own")
        known = _checked[key] = (entry, tuple("{" in t or "}" in t for t in entry))
    return known


def violation(key: str, *, field: str | None = None, **values: Any) -> RuleViolation:
    """The catalogued violation ``key``, its texts filled with ``values``."""
    (rule, ja, en, next_ja, next_en), template = _templates(key)
    if template[1]:
        ja = ja.format(**values)
    if template[2]:
        en = en.format(**values)
    if template[3]:
        next_ja = next_ja.format(**values)
    if template[4]:
        next_en = next_en.format(**values)
    if template[0]:
        rule = rule.format(**values)  # a rule ID filled in by the caller is checked as it comes
        return RuleViolation(rule_id=rule, message_ja=ja, message_en=en, next_step_ja=next_ja,
                             next_step_en=next_en, field=field)
    return fast.build(RuleViolation, rule_id=rule, message_ja=ja, message_en=en,
                      next_step_ja=next_ja, next_step_en=next_en, field=field)


def lookup_not_found(hints: tuple[LookupHint, ...]) -> RuleViolation:
    """REG-3 「資格審査情報が登録されていません」 with its hints as the next step."""
    (_, ja, en, _, _), _ = _templates("not-found")
    return fast.build(
        RuleViolation,
        rule_id="REG-3",
        message_ja=ja,
        message_en=en,
        next_step_ja=" ".join(h.text_ja for h in hints),
        next_step_en=" ".join(h.text_en for h in hints),
        field="user_id",
    )

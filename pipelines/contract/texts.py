"""The rejections of the contract process: rule ID, Japanese and English, next step.

Every refusal of a contract step cites its CON rule (docs/rule-ids.md) and says what the
person can do next, in both languages.
"""

from __future__ import annotations

from schemas.contract import MAX_CONTRACT_OFFICERS
from schemas.rejection import RuleViolation

__all__ = [
    "already_opened",
    "application_needed",
    "authorized_missing",
    "city_officer_only",
    "code_refused",
    "codes_used_up",
    "link_expired",
    "link_spent",
    "link_superseded",
    "link_unknown",
    "no_case",
    "not_declared",
    "set_needed_first",
    "surety_missing",
    "too_late_to_change_addresses",
    "too_many_officers",
    "wrong_step",
]


def _v(rule: str, ja: str, en: str, next_ja: str, next_en: str, *,
       field: str | None = None) -> RuleViolation:
    return RuleViolation(rule_id=rule, message_ja=ja, message_en=en, next_step_ja=next_ja,
                         next_step_en=next_en, field=field)


def no_case(case_id: str) -> RuleViolation:
    return _v("CON-2", f"案件 {case_id} の開札結果が登録されていません。",
              f"No bid opening (開札) is recorded for case {case_id}.",
              "開札後に手続きしてください。案件番号をご確認ください。",
              "Proceed after the bid opening; check the case number.", field="case_id")


def already_opened(case_id: str) -> RuleViolation:
    return _v("CON-2", f"案件 {case_id} は既に開札済みとして登録されています。",
              f"Case {case_id} is already recorded as opened.",
              "既存の案件の手続きを続けてください。", "Continue with the existing case.",
              field="case_id")


def authorized_missing() -> RuleViolation:
    return _v("CON-1", "電子契約利用申出書に契約締結権限者（氏名・メールアドレス）がありません。",
              "The 電子契約利用申出書 lacks the 契約締結権限者 (name and e-mail address).",
              "契約締結権限者の氏名とメールアドレスを記入して再提出してください。",
              "Fill in the 契約締結権限者's name and e-mail address and submit it again.",
              field="authorized")


def too_many_officers(count: int) -> RuleViolation:
    return _v("CON-1", f"契約担当者は{MAX_CONTRACT_OFFICERS}名までです（{count}名記入）。",
              f"At most {MAX_CONTRACT_OFFICERS} 契約担当者 may be named ({count} given).",
              f"契約担当者を{MAX_CONTRACT_OFFICERS}名以内にして再提出してください。",
              f"Name at most {MAX_CONTRACT_OFFICERS} 契約担当者 and submit it again.",
              field="officers")


def too_late_to_change_addresses() -> RuleViolation:
    return _v("CON-1", "契約書への同意後は、この契約の利用メールアドレスを変更できません。",
              "The addresses of this contract cannot change once the contract is agreed.",
              "変更契約の際に新しい電子契約利用申出書を提出してください。",
              "Submit a new 電子契約利用申出書 with the change contract (変更契約).")


def not_declared(address: str, field: str) -> RuleViolation:
    return _v("CON-1", f"{address} は電子契約利用申出書に記載されたアドレスではありません。",
              f"{address} is not an address of the 電子契約利用申出書.",
              "アドレスが変わった場合は、新しい電子契約利用申出書を提出してください。",
              "If the address changed, submit a new 電子契約利用申出書.", field=field)


def application_needed() -> RuleViolation:
    return _v("CON-2", "電子契約利用申出書がまだ受理されていません。",
              "No 電子契約利用申出書 has been accepted for this case yet.",
              "受注者から申出書が提出された後に契約書を作成してください。",
              "Prepare the contract set once the contractor's 申出書 is accepted.")


def set_needed_first() -> RuleViolation:
    return _v("CON-2", "確認中の契約書がありません。", "No contract set is out for review.",
              "発注者が契約書を送付するまでお待ちください。",
              "Wait until the city sends the contract set.")


def wrong_step(step_ja: str, step_en: str, status: str) -> RuleViolation:
    return _v("CON-2", f"現在の状態（{status}）では「{step_ja}」はできません。",
              f"'{step_en}' is not possible while the case is {status}.",
              "契約一覧で案件の状態を確認してください。",
              "Check the case's status in the contract list.")


def link_superseded() -> RuleViolation:
    return _v("CON-3", "この確認用リンクは新しいリンクに置き換えられています。",
              "This review link was replaced by a newer one.",
              "最新の確認依頼メールのリンクを使用してください。",
              "Use the link of the latest review mail.", field="link_id")


def link_expired(expired_at: str) -> RuleViolation:
    return _v("CON-3", f"確認用リンクの有効期限（{expired_at}）を過ぎています。",
              f"The review link expired at {expired_at}.",
              "リンクの再送を依頼してください。", "Ask for the link to be sent again.",
              field="link_id")


def surety_missing() -> RuleViolation:
    return _v("SUR-6", "契約保証の確認が完了していません。",
              "The contract surety (契約保証) has not been accepted yet.",
              "受注者の保証契約番号と認証キーの確認が完了してから同意してください。",
              "Agree once the contractor's guarantee number and key are accepted.")


def city_officer_only() -> RuleViolation:
    return _v("CON-2", "発注者の同意は案件の契約担当職員のみが行えます。",
              "Only the city's officer of this case can agree on the city's behalf.",
              "案件の契約担当職員が同意してください。", "Have the case's officer agree.",
              field="by")


def link_unknown() -> RuleViolation:
    return _v("CON-3", "この確認用リンクは無効です（存在しないか、保存期間を過ぎています）。",
              "This review link is not valid (it does not exist, or was deleted after "
              "expiring).",
              "確認依頼メールのリンクをそのまま開いてください。解決しない場合は発注者の契約担当に"
              "連絡してください。",
              "Open the link exactly as in the review mail; if that fails, contact the "
              "city's contract officer.", field="link")


def link_spent() -> RuleViolation:
    return _v("CON-3", "この確認用リンクは使用済みです（同意または差戻しが済んでいます）。",
              "This review link has been used: the contract set was already agreed to or "
              "rejected through it.",
              "手続きの状況は発注者の契約担当に確認してください。",
              "Ask the city's contract officer where the case stands.", field="link")


_CODE_PROBLEMS = {
    "none": ("確認コードが発行されていません。", "No confirmation code was asked for."),
    "wrong": ("確認コードが正しくありません。", "The confirmation code is not right."),
    "expired": ("確認コードの有効期限が切れています。", "The confirmation code has expired."),
    "exhausted": ("確認コードの入力回数の上限を超えました。",
                  "Too many wrong confirmation codes were entered."),
}


def code_refused(problem: str) -> RuleViolation:
    """A missing, wrong, expired or used-up one-time code (``problem``: links.CodeCheck)."""
    ja, en = _CODE_PROBLEMS.get(problem, _CODE_PROBLEMS["wrong"])
    return _v("CON-3", ja, en,
              "確認コードを依頼し、ご自身のアドレスに届いたコードを10分以内に入力してください。",
              "Ask for a confirmation code and enter the one mailed to your address "
              "within 10 minutes.", field="code")


def codes_used_up() -> RuleViolation:
    return _v("CON-3", "このリンクで依頼できる確認コードの回数を超えました。",
              "This review link cannot ask for more confirmation codes.",
              "リンクの再送を依頼し、新しいリンクから手続きしてください。",
              "Ask for the link to be sent again and continue from the new link.",
              field="code")

"""The console's words in Japanese and English (``ja`` first; ``?lang=en`` switches).

Every label a page shows is here, so a page never mixes the two languages and a missing
translation fails the unit test that walks this table."""

from __future__ import annotations

from schemas.contract import ContractStatus

__all__ = ["STATUS", "WORDS", "word"]

WORDS: dict[str, tuple[str, str]] = {
    "app": ("電子調達連携ハブ 職員コンソール", "Procurement hub staff console"),
    "skip": ("本文へ移動", "Skip to main content"),
    "nav": ("メインメニュー", "Main menu"),
    "dashboard": ("ダッシュボード", "Dashboard"),
    "cases": ("案件一覧", "Cases"),
    "case": ("案件詳細", "Case"),
    "login": ("ログイン", "Log in"),
    "logout": ("ログアウト", "Log out"),
    "username": ("利用者名", "User name"),
    "password": ("パスワード", "Password"),
    "login_oidc": ("組織の認証基盤（OpenID Connect）でログイン",
                   "Log in with your organisation's OpenID Connect provider"),
    "login_local": ("このハブの利用者でログイン", "Log in with a user of this hub"),
    "no_login": ("ログインの方法が設定されていません。管理者が「hub users add」で利用者を"
                 "登録するか、OpenID Connect の認証基盤を設定してください。",
                 "No way to log in is configured: an administrator adds a user with "
                 "'hub users add' or configures an OpenID Connect provider."),
    "signed_in_as": ("ログイン中", "Signed in as"),
    "roles": ("役割", "Roles"),
    "entities": ("所属機関", "Procuring entities"),
    "every_entity": ("すべての発注機関", "every procuring entity"),
    "language": ("English", "日本語"),
    "language_label": ("Switch to English", "日本語に切り替え"),
    "today": ("本日", "Today"),
    "this_week": ("今週", "This week"),
    "registrations": ("利用者登録", "Registrations"),
    "accepted": ("受付", "Accepted"),
    "rejected": ("却下", "Rejected"),
    "needs_confirmation": ("確認待ち", "Needing confirmation"),
    "confirmation_queue": ("確認待ちの登録（REG-11）", "Held for confirmation (REG-11)"),
    "rejected_by_rule": ("却下の内訳（ルールID）", "Rejections by rule ID"),
    "rule": ("ルールID", "Rule ID"),
    "count": ("件数", "Count"),
    "none": ("ありません", "None"),
    "registrations_note": ("カードエージェント経由の申請と、確認待ちの登録（REG-11）への管理者の"
                           "確認・却下に対する回答を数えています。", "Counts the answers to "
                           "requests made through the card agent and to administrators' "
                           "REG-11 confirmations and rejections."),
    "cases_by_status": ("状態別の案件数", "Cases by status"),
    "status": ("状態", "Status"),
    "dead_letters": ("デッドレター", "Dead letters"),
    "dead_consumer": ("コンシューマー", "Consumer"),
    "reason": ("理由", "Reason"),
    "dead_stored": ("記録済み（処理記録より）", "Recorded (from the processing records)"),
    "dead_since_start": ("このプロセスの起動以降", "Since this process started"),
    "connectors": ("コネクタの状態", "Connectors"),
    "connector": ("コネクタ", "Connector"),
    "circuit": ("遮断器", "Circuit"),
    "window": ("保守時間帯", "Maintenance window"),
    "window_open_until": ("保守中（終了予定 {until}）", "Open until {until}"),
    "window_closed": ("なし", "None now"),
    "last_error": ("状態・最後のエラー", "State, last error"),
    "no_connectors": ("このプロセスはコネクタを動かしていません。",
                      "This process runs no connectors."),
    "lag": ("コンシューマーの遅れ", "Consumer lag"),
    "topic": ("トピック", "Topic"),
    "records_behind": ("未処理のレコード数", "Records behind"),
    "lag_note": ("このプロセスが受け持つパーティションのみ。他のプロセスの分は各プロセスの"
                 "/metrics（hub_consumer_lag）で確認してください。",
                 "Only the partitions this process holds; other processes' lag is in their "
                 "/metrics (hub_consumer_lag)."),
    "admin_only": ("デッドレター・コネクタ・遅れは管理者に表示されます。",
                   "Dead letters, connectors and lag are shown to administrators."),
    "search": ("検索", "Search"),
    "search_cases": ("案件の検索", "Search cases"),
    "counterparty": ("契約相手（商号）", "Counterparty (trade name)"),
    "amount_min": ("契約金額（以上、円）", "Amount from (yen)"),
    "amount_max": ("契約金額（以下、円）", "Amount up to (yen)"),
    "concluded_from": ("締結日（から）", "Concluded from"),
    "concluded_to": ("締結日（まで）", "Concluded up to"),
    "any_status": ("すべて", "Any"),
    "results": ("検索結果 {n} 件", "{n} result(s)"),
    "on_page": ("このページに {n} 件（更新の新しい順）",
                "{n} on this page, most recently updated first"),
    "pages": ("ページ", "Pages"),
    "first_page": ("最初のページ", "First page"),
    "next_page": ("次のページ", "Next page"),
    "case_id": ("案件番号", "Case"),
    "subject": ("件名", "Subject"),
    "agreed": ("合意", "Agreed"),
    "parties": ("当事者", "Parties"),
    "amount": ("契約金額", "Amount"),
    "updated": ("最終更新", "Last update"),
    "yen": ("{n} 円", "¥{n}"),
    "timeline": ("経過", "Timeline"),
    "when": ("日時", "When"),
    "what": ("出来事", "What"),
    "who": ("実施者", "Who"),
    "detail": ("詳細", "Detail"),
    "documents": ("文書", "Documents"),
    "contract_set": ("契約書類（確認用）", "Contract set (for review)"),
    "signed_pdf": ("署名済み契約書 PDF", "Signed contract PDF"),
    "certificate": ("合意締結証明書 PDF", "Conclusion certificate (PDF)"),
    "no_documents": ("まだ文書はありません。", "No document yet."),
    "signatures": ("電子署名", "Signatures"),
    "revalidate": ("署名を今すぐ再検証する", "Re-validate the signatures now"),
    "signature_ok": ("有効", "Valid"),
    "signature_bad": ("無効", "Not valid"),
    "signer": ("署名者", "Signer"),
    "timestamped": ("タイムスタンプ", "Timestamp"),
    "validated_now": ("再検証の結果", "Re-validation result"),
    "agree_city": ("発注者として合意する", "Agree as the procuring entity"),
    "agree_city_help": ("受注者の署名が確認済みです。合意すると発注者の電子署名が付与され、"
                        "締結となります。", "The contractor's signature is verified. Agreeing "
                        "adds the city's signature and concludes the contract."),
    "agreed_sent": ("発注者の合意を受け付けました（受付番号 {id}）。署名と締結は数秒で"
                    "反映されます。", "The city's agreement was accepted (request {id}); the "
                    "signature and conclusion follow within seconds."),
    "reload": ("最新の状態を表示", "Show the latest state"),
    "contractor": ("受注者", "Contractor"),
    "city": ("発注者", "Procuring entity"),
    "officer": ("契約担当職員", "City officer"),
    "concluded_at": ("締結日時", "Concluded"),
    "error": ("操作できません", "Not possible"),
    "next_step": ("次にできること", "What you can do"),
    "back_to_cases": ("案件一覧に戻る", "Back to the cases"),
    "not_found": ("ページが見つかりません。", "No such page."),
    "csrf": ("フォームの有効期限が切れたか、別の画面から送信されました。画面を開き直して、"
             "もう一度操作してください。", "The form expired or was sent from another page: "
             "open the page again and repeat the step."),
    "decisions": ("最近の申請と判定", "Recent requests and decisions"),
    "queue_note": ("REG-11 の確認は、申請者本人が IC カードで改めて認証して行うほか、管理者が"
                   "会社に確認したうえでこの画面から「確認して登録」または「却下」できます"
                   "（操作は監査記録に残ります）。",
                   "A REG-11 confirmation is made by the applicant, authenticating again "
                   "with the IC card; an administrator may also, after checking with the "
                   "company, confirm or reject it here (written to the audit trail)."),
    "held_confirm": ("確認して登録…", "Confirm…"),
    "held_reject": ("却下…", "Reject…"),
    "held_confirm_confirm": ("確認待ちの登録を市が確認して登録します",
                             "Confirm the held registration for the city"),
    "held_confirm_reject": ("確認待ちの登録を却下します", "Reject the held registration"),
    "held_warning_confirm": ("会社に確認したうえで、申請どおりに登録します（REG-11 の確認を、"
                             "申請者のICカードによる確認に代えて、あなたの名前で記録します）。"
                             "登録のお知らせが申請者に送られます。",
                             "After checking with the company, the registration proceeds as "
                             "the applicant asked (the REG-11 confirmation is recorded in your "
                             "name instead of the applicant's card). The applicant gets the "
                             "registration notice."),
    "held_warning_reject": ("この申請は登録されず、REG-11 の却下として申請者に回答とメールで"
                            "知らされます。操作は監査記録に残ります。",
                            "The request is not registered; the applicant is answered and "
                            "mailed a REG-11 rejection. The step is written to the audit "
                            "trail."),
    "held_do_confirm": ("確認して登録する", "Confirm and register"),
    "held_do_reject": ("却下する", "Reject"),
    "held_done_confirm": ("確認を登録パイプラインに送りました（要求 {request}）。結果は下の一覧に"
                          "表示されます。", "The confirmation went to the registration "
                          "pipeline (request {request}); its answer appears below."),
    "held_done_reject": ("却下を登録パイプラインに送りました（要求 {request}）。結果は下の一覧に"
                         "表示されます。", "The rejection went to the registration pipeline "
                         "(request {request}); its answer appears below."),
    "kind_accepted": ("受付", "Accepted"),
    "kind_rejected": ("却下", "Rejected"),
    "kind_needs_confirmation": ("確認待ち", "Needs confirmation"),
    "user_id": ("利用者ID", "User ID"),
    "trade_name": ("商号", "Trade name"),
    "card_serial": ("カードのシリアル番号", "Card serial"),
    "held_since": ("保留した日時", "Held since"),
    "dlq_title": ("デッドレター", "Dead letters"),
    "dlq_filters": ("デッドレターの絞り込み", "Filter dead letters"),
    "dlq_results": ("{n} 件（所属機関の全 {total} 件中）", "{n} of your entities' {total}"),
    "any": ("すべて", "Any"),
    "entity": ("発注機関", "Procuring entity"),
    "since": ("発生日（以降）", "Since (day)"),
    "ref": ("位置（トピック/パーティション/オフセット）", "Where (topic/partition/offset)"),
    "original": ("元のトピック", "Original topic"),
    "message_type": ("メッセージ種別", "Message type"),
    "attempts": ("試行回数", "Attempts"),
    "error_text": ("エラー", "Error"),
    "at": ("発生日時", "When"),
    "replayed_by": ("再送済み", "Replayed"),
    "show": ("表示", "Show"),
    "headers": ("ヘッダー", "Headers"),
    "history": ("試行の履歴", "Attempt history"),
    "value": ("メッセージ本文（秘密情報は伏せ字）", "Message (secrets redacted)"),
    "what_to_do": ("対処方法", "What to do"),
    "replay_one": ("この1件を再送する…", "Replay this one…"),
    "replay_confirm": ("再送の確認", "Confirm the replay"),
    "replay_warning": ("このメッセージを元のトピック {topic} に再送します。原因が解消されて"
                       "いない場合は、再びデッドレターになります。再送は監査記録に残ります。",
                       "This message goes back to its topic {topic}. If its cause is not "
                       "fixed it is dead-lettered again. The replay is written to the audit "
                       "trail."),
    "replay_do": ("再送する", "Replay"),
    "cancel": ("やめる", "Cancel"),
    "replayed_now": ("{ref} を {topic} に再送しました。", "{ref} was sent back to {topic}."),
    "back_to_dlq": ("デッドレター一覧に戻る", "Back to the dead letters"),
    "stored_by_ref": ("本文は大きいため参照で保管されています（hub_claim_check）。"
                      "「hub dlq show」で表示できます。", "The message is stored by reference "
                      "(hub_claim_check); `hub dlq show` prints it."),
    "replay_all": ("表示中の {n} 件をまとめて再送する…", "Replay all {n} shown…"),
    "replay_set_title": ("デッドレターのまとめて再送", "Replay a filtered set of dead letters"),
    "replay_set_warning": ("この絞り込みで表示される {shown} 件のうち、まだ再送していない {n} 件を"
                           "元のトピックに再送します（1回に最大 {limit} 件、古い順）。1件ごとに"
                           "監査記録に残ります。",
                           "Of the {shown} shown with this filter, the {n} not replayed yet go "
                           "back to their topics (at most {limit} at once, oldest first); each "
                           "one is written to the audit trail."),
    "replay_set_do": ("{n} 件を再送する", "Replay {n}"),
    "replay_set_done": ("{n} 件を再送しました。", "{n} sent back to their topics."),
    "replay_set_none": ("この絞り込みの {shown} 件はすべて再送済みです。再送するものはありません。",
                        "All {shown} shown with this filter were replayed already; nothing "
                        "to replay."),
    "replay_set_changed": ("確認の後で対象が変わりました。この件数で改めて確認してください"
                           "（まだ何も再送していません）。",
                           "The set changed since you confirmed it: confirm it again with "
                           "this count (nothing was replayed yet)."),
    "replay_set_list": ("再送するデッドレター", "The dead letters replayed"),
    "connectors_title": ("コネクタ", "Connectors"),
    "connectors_note": ("このプロセスのコネクタの状態です（ヘルスチェック、遮断器、保守時間帯、"
                        "処理待ちの件数、最後のエラー）。一時停止中に届いたメッセージはトピックで"
                        "待ち、再開すると1回ずつ処理されます。",
                        "The connectors of this process (health probe, circuit breaker, "
                        "maintenance window, records waiting, last error). What arrives while "
                        "one is paused waits on its topic and is handled once on resume."),
    "connector_state": ("動作", "State"),
    "health": ("ヘルスチェック", "Health"),
    "restarts": ("再起動回数", "Restarts"),
    "last_failure": ("最後のエラー", "Last error"),
    "trial_in": ("{s} 秒後に試行", "trial in {s} s"),
    "connector_action": ("操作", "Action"),
    "connector_pause": ("一時停止…", "Pause…"),
    "connector_resume": ("再開…", "Resume…"),
    "connector_confirm_pause": ("{name} の一時停止の確認", "Confirm pausing {name}"),
    "connector_confirm_resume": ("{name} の再開の確認", "Confirm resuming {name}"),
    "connector_warning_pause": ("{name} は処理中のまとまりを終えてから止まります。届くメッセージは"
                                "トピックで待ち、失われません。操作は監査記録に残ります。",
                                "{name} stops once the batch in flight has ended; what "
                                "arrives waits on its topic, nothing is lost. The step is "
                                "written to the audit trail."),
    "connector_warning_resume": ("{name} は待っていた最初のメッセージから処理を再開します。"
                                 "操作は監査記録に残ります。",
                                 "{name} handles again from the first record not handled. "
                                 "The step is written to the audit trail."),
    "connector_do_pause": ("一時停止する", "Pause"),
    "connector_do_resume": ("再開する", "Resume"),
    "connector_paused": ("{name} を一時停止しました。", "{name} is paused."),
    "connector_resumed": ("{name} を再開しました。", "{name} was resumed."),
    "bad_filter": ("検索条件が正しくありません", "The search filters are not valid"),
}
"""key → (Japanese, English)."""

STATUS: dict[ContractStatus, tuple[str, str]] = {
    ContractStatus.OPENED: ("開札済み（申出書待ち）", "Opened (awaiting application)"),
    ContractStatus.APPLIED: ("申出書受付（契約書類待ち）", "Applied (awaiting contract set)"),
    ContractStatus.REVIEW: ("受注者確認中", "With the contractor for review"),
    ContractStatus.CONTRACTOR_AGREED: ("受注者合意（署名待ち）",
                                       "Contractor agreed (awaiting signature)"),
    ContractStatus.CONTRACTOR_SIGNED: ("受注者署名済み（発注者の合意待ち）",
                                       "Contractor signed (awaiting the city)"),
    ContractStatus.CITY_AGREED: ("発注者合意（署名中）", "City agreed (signing)"),
    ContractStatus.SENT_TO_CLOUDSIGN: ("CloudSign で手続き中", "With CloudSign"),
    ContractStatus.REJECTED: ("受注者が差戻し", "Rejected by the contractor"),
    ContractStatus.CONCLUDED: ("締結済み", "Concluded"),
}


def word(key: str, lang: str, **values: object) -> str:
    ja, en = WORDS[key]
    text = en if lang == "en" else ja
    return text.format(**values) if values else text

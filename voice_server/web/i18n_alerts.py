"""Japanese and English UI text of the alert pages, the banner and the phone app's emergency
control [pure] (merged into ``web.i18n.MESSAGES``)."""

from __future__ import annotations

# key: (Japanese, English)
ALERT_MESSAGES: dict[str, tuple[str, str]] = {
    "alerts": ("アラート", "Alerts"),
    "alert_keywords": ("通知キーワード", "Alert keywords"),
    "alert_kind_emergency": ("緊急通報", "Emergency"),
    "alert_kind_keyword": ("キーワード", "Keyword"),
    "alert_kind_transcription": ("文字起こし停止", "Transcription stopped"),
    "alert_state_raised": ("未対応", "Unattended"),
    "alert_state_acknowledged": ("対応中", "Acknowledged"),
    "alert_state_resolved": ("完了", "Resolved"),
    "alert_state_open": ("未完了", "Open"),
    "alert_state_all": ("すべて", "All"),
    "alert_kind_any": ("すべての種類", "Any kind"),
    "alert_channel_any": ("すべてのチャンネル", "Any channel"),
    "alert_filter": ("絞り込む", "Filter"),
    "alert_none": ("該当するアラートはありません。", "No alerts match."),
    "alert_acknowledge": ("対応する", "Acknowledge"),
    "alert_acknowledged_by": ("対応者", "Acknowledged by"),
    "alert_resolve": ("完了にする", "Resolve"),
    "alert_resolved_by": ("完了者", "Resolved by"),
    "alert_resolution_valid": ("本物", "Valid"),
    "alert_resolution_false_alarm": ("誤報", "False alarm"),
    "alert_note": ("メモ", "Note"),
    "alert_open_detail": ("詳細", "Details"),
    "alert_escalated": ("全監督者に通知済み", "Escalated to every supervisor"),
    "alert_location": ("位置", "Location"),
    "alert_raised_at": ("発生", "Raised"),
    "alert_who": ("対象者", "Who"),
    "alert_deployment": ("全体", "Whole deployment"),
    "alert_enable_sound": ("アラート音を有効にする", "Enable alert sound"),
    "alert_silence": ("消音(対応にはなりません)", "Silence (does not acknowledge)"),
    "alert_silenced": ("消音中", "Silenced"),
    "alert_new": (
        "新しいアラートがあります。再読み込みしてください。",
        "New alerts have arrived: reload to see them.",
    ),
    "alert_play": ("音声を再生", "Play the audio"),
    "alert_keywords_help": (
        "1行に1語。2文字以上、1つのリストに200語まで。NFKC と大文字小文字は検索と同じく"
        "そろえます(ひらがなとカタカナは別の語です)。",
        "One per line; at least 2 characters, at most 200 per list. Matched as search matches "
        "(NFKC and case folded; hiragana and katakana differ).",
    ),
    "alert_keywords_deployment": ("全チャンネル共通", "Every channel"),
    "alert_save": ("保存", "Save"),
    "webhooks": ("Webhook", "Webhooks"),
    "webhook_events": ("送るイベント", "Events"),
    "webhook_ca_file": (
        "信頼するCA証明書のファイル(サーバー上、任意)",
        "CA file to trust (on the server, optional)",
    ),
    "webhook_add": ("登録", "Register"),
    "webhook_endpoints": ("登録済みの送信先", "Endpoints"),
    "webhook_remove": ("削除", "Remove"),
    "webhook_dead": ("配信できなかったもの", "Dead letters"),
    "webhook_no_dead": ("ありません。", "None."),
    "webhook_redeliver": ("再送", "Redeliver"),
    "webhook_secret_once": (
        "署名の秘密鍵です。この画面でしか表示されません。受信側に設定してください。",
        "The signing secret: shown only now. Configure it at the receiver.",
    ),
}

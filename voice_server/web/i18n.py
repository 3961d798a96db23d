"""Japanese and English UI text [pure]: the language from a cookie (the switch) or
Accept-Language, Japanese by default (Japanese municipalities first)."""

from __future__ import annotations

from collections.abc import Callable

from voice_server.web.i18n_alerts import ALERT_MESSAGES

LANGS = ("ja", "en")
DEFAULT = "ja"

# key: (Japanese, English)
MESSAGES: dict[str, tuple[str, str]] = {
    "app": ("音声サーバー", "Voice server"),
    "dashboard": ("ダッシュボード", "Dashboard"),
    "transcription_degraded": (
        "文字起こしが遅れています: ライブ字幕は表示されず、通話記録への反映は10秒ほど遅れます。",
        "Transcription is degraded: no live captions; the call log fills in about 10 s late.",
    ),
    "transcription_stopped": (
        "文字起こしが止まっています: 新しい発話は通話記録に載りません(音声は保存されています)。"
        "管理者に連絡してください。",
        "Transcription has stopped: new utterances are not reaching the call log (their audio "
        "is kept). Tell the administrator.",
    ),
    "signin": ("サインイン", "Sign in"),
    "signin_code": ("サインインコードで入る", "Sign in with a code"),
    "signout": ("サインアウト", "Sign out"),
    "signed_in_as": ("サインイン中:", "Signed in as"),
    "name": ("ユーザー名", "User name"),
    "password": ("パスワード", "Password"),
    "new_password": ("新しいパスワード", "New password"),
    "code": ("コード", "Code"),
    "display_name": ("表示名", "Display name"),
    "role": ("役割", "Role"),
    "role_staff": ("職員", "Staff"),
    "role_supervisor": ("監督者", "Supervisor"),
    "role_admin": ("管理者", "Admin"),
    "status": ("状態", "Status"),
    "enabled": ("有効", "Enabled"),
    "disabled": ("無効", "Disabled"),
    "enable": ("有効にする", "Enable"),
    "disable": ("無効にする", "Disable"),
    "users": ("ユーザー", "Users"),
    "channels": ("チャンネル", "Channels"),
    "asr_phrases": ("認識語句", "Phrases"),
    "asr_phrases_help": (
        "全チャンネル共通の語句（避難所・施設・職員の名前、キーワード）を1行に1つ。"
        "Whisper はこの一覧とチャンネルの一覧を手がかりに認識します（制限はしません）。"
        "Vosk はチャンネルに一覧がある場合だけ、その語句に認識を限定します。",
        "Deployment-wide phrases (shelter, place and staff names, keywords), one per line. "
        "Whisper is biased towards this list and the channel's list (nothing is excluded); "
        "Vosk uses a channel's list only, as a grammar that restricts recognition to it.",
    ),
    "channel": ("チャンネル", "Channel"),
    "audit": ("監査ログ", "Audit log"),
    "network": ("通信状況", "Network"),
    "network_help": (
        "各参加者の端末が約5秒ごとに報告する通信経路と品質です(端末の自己申告)。"
        "UDP が最良、TCP と TURN(TLS) は UDP が通らないネットワーク用です。",
        "The path and quality each participant's device reports every ~5 s (as the device "
        "says). UDP is best; TCP and TURN (TLS) are for networks that block UDP.",
    ),
    "net_path": ("経路", "Path"),
    "net_rtt": ("往復遅延", "Round trip"),
    "net_loss": ("損失", "Loss"),
    "net_jitter": ("揺らぎ", "Jitter"),
    "net_concealed": ("補間", "Concealed"),
    "net_age": ("報告から", "Reported"),
    "net_none": ("未報告", "no report yet"),
    "net_by_path": ("経路ごとの参加者数", "Participants per path"),
    "no_participants": ("参加者はいません。", "Nobody is connected."),
    "device": ("端末", "Device"),
    "codes": ("サインインコード", "Sign-in codes"),
    "announcements": ("一斉放送", "Announcements"),
    "announce_text": ("放送する文章", "Text to announce"),
    "announce_channels": ("放送先のチャンネル", "Channels"),
    "announce_urgent": ("緊急(話している人に割り込む)", "Urgent (cuts in on whoever is talking)"),
    "announce_repeat": ("繰り返し", "Repeat"),
    "announce_send": ("放送する", "Announce"),
    "announce_sent": ("放送を開始しました。", "The announcement is playing."),
    "announce_failed": ("放送できません", "Cannot announce"),
    "announce_recent": ("最近の放送", "Recent announcements"),
    "announce_none": ("まだ放送はありません。", "No announcements yet."),
    "announce_not_heard": ("未聴取", "Not heard by"),
    "announce_heard": ("聴取済み", "Heard by"),
    "announce_everyone_heard": ("全員が聴取しました", "Everyone heard it"),
    "announce_status_playing": ("放送中", "Playing"),
    "announce_status_done": ("完了", "Done"),
    "announce_status_failed": ("失敗", "Failed"),
    "recorded_file": ("録音ファイルを放送", "Announce a recording"),
    "recorded_hint": (
        "10 MB・120 秒まで。WAV、MP3、M4A、Ogg、FLAC、WebM など。",
        "Up to 10 MB and 120 s: WAV, MP3, M4A, Ogg, FLAC, WebM…",
    ),
    "recorded_title": ("通話記録に残す説明(任意)", "What the call log shows (optional)"),
    "recorded_send": ("録音を放送する", "Play the recording"),
    "announce_when": ("放送の時刻", "When"),
    "announce_now": ("今すぐ", "Now"),
    "announce_at": ("日時を指定(1回)", "Once, at"),
    "announce_daily": ("毎日(曜日を指定)", "Daily at"),
    "announce_days": ("曜日", "Days"),
    "announce_scheduled": ("予約しました。", "The announcement is scheduled."),
    "schedules": ("予約した放送", "Scheduled announcements"),
    "schedules_none": ("予約した放送はありません。", "No scheduled announcements."),
    "schedule_next": ("次回", "Next"),
    "schedule_cancel": ("取り消す", "Cancel"),
    "schedule_save": ("変更を保存", "Save changes"),
    "schedule_status_active": ("予約中", "Scheduled"),
    "schedule_status_done": ("終了", "Done"),
    "schedule_status_cancelled": ("取消済み", "Cancelled"),
    "fire_firing": ("放送中", "Playing"),
    "fire_played": ("放送済み", "Played"),
    "fire_missed": ("時刻を5分以上過ぎたため未放送", "Missed: more than 5 minutes late"),
    "fire_failed": ("失敗", "Failed"),
    "day_mon": ("月", "Mon"),
    "day_tue": ("火", "Tue"),
    "day_wed": ("水", "Wed"),
    "day_thu": ("木", "Thu"),
    "day_fri": ("金", "Fri"),
    "day_sat": ("土", "Sat"),
    "day_sun": ("日", "Sun"),
    "target_waiting": ("待機中", "Waiting"),
    "target_playing": ("放送中", "Playing"),
    "target_played": ("放送済み", "Played"),
    "target_slot_timeout": ("30秒以内に空きがなく未放送", "Not played: no free slot within 30 s"),
    "about": ("このサーバーについて", "About"),
    "about_voice": (
        "一斉放送の音声合成: Open JTalk(pyopenjtalk-plus)と HTS 音声「Mei」"
        "(© 名古屋工業大学 MMDAgent Project Team、CC BY 3.0)。",
        'Announcement speech: Open JTalk (pyopenjtalk-plus) with the HTS voice "Mei" '
        "(© Nagoya Institute of Technology, MMDAgent Project Team, CC BY 3.0).",
    ),
    "add_user": ("ユーザーを追加", "Add user"),
    "add_channel": ("チャンネルを追加", "Add channel"),
    "add": ("追加", "Add"),
    "save": ("保存", "Save"),
    "edit": ("編集", "Edit"),
    "remove": ("外す", "Remove"),
    "reset_password": ("パスワード再設定", "Reset password"),
    "members": ("メンバー (通話できる人)", "Members (may talk)"),
    "supervisors": ("監督者 (記録を見られる人)", "Supervisors (may review)"),
    "member": ("メンバー", "Member"),
    "supervisor": ("監督者", "Supervisor"),
    "assign": ("割り当て", "Assign"),
    "assign_as": ("割り当ての種類", "Assign as"),
    "talk_rules": ("優先度と発言権", "Priority and talk rights"),
    "priority_level": ("優先度", "Priority"),
    "priority_1": ("1 (職員)", "1 (staff)"),
    "priority_2": ("2 (監督者: 割り込み可)", "2 (supervisor: may cut in)"),
    "talk_right": ("発言権", "Talk right"),
    "talker": ("発言できる", "Talker"),
    "listener": ("聞くだけ", "Listen only"),
    "duck_db": ("割り込み時の他の話者の音量 (dB)", "Other talkers during a cut-in (dB)"),
    "retention_days": ("保存日数 (空欄=無期限)", "Retention days (empty = for ever)"),
    "legal_hold": ("訴訟ホールド (削除しない)", "Legal hold (never purge)"),
    "forever": ("無期限", "for ever"),
    "yes": ("はい", "yes"),
    "no": ("いいえ", "no"),
    "user": ("ユーザー", "User"),
    "channel_name": ("チャンネル名 (英数字)", "Channel name (ASCII)"),
    "user_name_hint": ("英小文字・数字・_-.", "lower-case letters, digits, _-."),
    "time": ("日時", "Time"),
    "actor": ("実行者", "Actor"),
    "action": ("操作", "Action"),
    "target": ("対象", "Target"),
    "result": ("結果", "Result"),
    "address": ("アドレス", "Address"),
    "details": ("詳細", "Details"),
    "older": ("さらに古い記録", "Older entries"),
    "export_csv": ("CSVで書き出し", "Export CSV"),
    "export_json": ("JSONで書き出し", "Export JSON"),
    "create_code": ("コードを作成", "Create code"),
    "code_for": ("対象ユーザー", "For user"),
    "code_valid_until": ("有効期限", "Valid until"),
    "code_help": (
        "共用端末でこのQRコードを読み取るか、コードを入力してください。一度だけ使えます。",
        "Scan this QR code on the shared device or type the code. It works once.",
    ),
    "no_staff_for_codes": (
        "コードを作成できる職員がいません。",
        "There is no staff account you can create a code for.",
    ),
    "welcome": ("ようこそ", "Welcome"),
    "home_admin": (
        "ユーザー、チャンネル、割り当て、保存期間、監査ログを管理します。",
        "Manage users, channels, assignments, retention and the audit log.",
    ),
    "home_supervisor": ("担当チャンネル", "Your channels"),
    "none": ("なし", "none"),
    "forbidden": ("この操作は許可されていません。", "You are not allowed to do this."),
    "not_found": ("見つかりません。", "Not found."),
    "signin_failed": (
        "ユーザー名またはパスワードが違います。",
        "The user name or password is wrong.",
    ),
    "code_failed": (
        "コードが無効か、期限切れか、使用済みです。",
        "The code is invalid, expired or already used.",
    ),
    "locked": (
        "試行が多すぎます。しばらくしてからもう一度お試しください。",
        "Too many attempts. Try again later.",
    ),
    "no_accounts": (
        "アカウントがまだありません。サーバーで voice-server users add を実行してください。",
        "There are no accounts yet. Run voice-server users add on the server.",
    ),
    "saved": ("保存しました。", "Saved."),
    "error": ("エラー", "Error"),
    "language": ("English", "日本語"),
    "staff_signed_in": (
        "サインインしました。通話アプリに戻ってください。",
        "You are signed in. Go back to the voice app.",
    ),
    "open_app": ("通話アプリを開く", "Open the voice app"),
    "confirm_disable": ("このユーザーを無効にしますか?", "Disable this user?"),
    # the call log: search, transcript, live view
    "search": ("通話記録の検索", "Search the call log"),
    "live": ("ライブ", "Live"),
    "console": ("指令台", "Console"),
    "console_no_channels": ("担当のチャンネルがありません。", "You supervise no channel."),
    "console_ready": ("「開始」で担当チャンネルを聞きます。", "Start to hear your channels."),
    "console_start": ("開始", "Start"),
    "console_connected": ("接続中", "Connected"),
    "console_refused": ("接続できません", "Refused"),
    "console_no_mic": ("マイクが使えません(聞くだけ)", "No microphone (listening only)"),
    "console_too_many": ("同時に聞けるのは8チャンネルまでです", "At most 8 channels at once"),
    "console_monitor": ("聞く", "Hear"),
    "console_talk_here": ("ここに話す", "Talk here"),
    "console_volume": ("音量", "Volume"),
    "console_mute": ("消音", "Mute"),
    "console_target": ("話す相手", "Talk to"),
    "console_all_call": ("全チャンネルへ一斉通話", "All-call (every channel heard)"),
    "console_direct": ("個人へ", "One person"),
    "console_hold_to_talk": ("押して話す(スペース)", "Hold to talk (space)"),
    "console_noise_suppression": ("雑音抑制", "Noise suppression"),
    "query": ("検索語 (1文字から)", "Search words (from 1 character)"),
    "all_my_channels": ("担当のすべてのチャンネル", "All my channels"),
    "speaker": ("話者", "Speaker"),
    "from_date": ("開始日", "From"),
    "to_date": ("終了日", "To"),
    "search_button": ("検索", "Search"),
    "zone_note": ("日付と時刻のタイムゾーン:", "Dates and times are in"),
    "no_hits": ("該当する発話はありません。", "No utterance matches."),
    "bad_date": ("日付は YYYY-MM-DD で入力してください。", "Dates are YYYY-MM-DD."),
    "bad_query": ("検索条件が正しくありません。", "The search is not valid."),
    "transcript": ("発話の記録", "Transcript"),
    "word": ("単語", "Word"),
    "start_s": ("開始 (秒)", "Start (s)"),
    "end_s": ("終了 (秒)", "End (s)"),
    "confidence": ("信頼度", "Confidence"),
    "online": ("参加中", "Online"),
    "talking": ("発話中", "talking"),
    "reconnecting": ("再接続中", "reconnecting"),
    "captions": ("字幕 (認識中)", "Captions (recognizing)"),
    "committed": ("記録された発話", "Recorded utterances"),
    "live_connecting": ("接続中…", "Connecting…"),
    "live_no_partials": (
        "この認識エンジン（Whisper）は発話の途中の文字を出しません。発話が終わってから文字になります。",
        "This recognizer (Whisper) gives no text while someone talks: text appears once they stop.",
    ),
    "live_connected": ("接続しました", "Connected"),
    "live_closed": ("接続が切れました", "Disconnected"),
    "live_node": ("ノード", "node"),
    "live_dropped": ("表示が追いつかず省略されたメッセージ:", "Messages skipped (slow display):"),
}

MESSAGES.update(ALERT_MESSAGES)


def negotiate(accept_language: str | None, cookie: str | None = None) -> str:
    """The UI language: the switch's cookie, else the best of Accept-Language, else Japanese."""
    if cookie in LANGS:
        return str(cookie)
    best, best_q = DEFAULT, 0.0
    for part in (accept_language or "")[:512].split(","):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if lang in LANGS and q > best_q:
            best, best_q = lang, q
    return best


def translator(lang: str) -> Callable[[str], str]:
    index = 0 if lang == "ja" else 1

    def t(key: str) -> str:
        pair = MESSAGES.get(key)
        return pair[index] if pair else key

    return t

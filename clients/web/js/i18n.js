// UI text in Japanese and English, chosen from the browser's languages. Text is only ever set
// with textContent (never as HTML), so nothing here or from the server can inject markup.

const STRINGS = {
  en: {
    title: "Voice",
    signin_heading: "Sign in",
    signin: "Sign in",
    signing_in: "Signing in…",
    code_label: "Sign-in code",
    code_hint: "Scan the QR code, or type the 8-character code you were given.",
    password_heading: "Or with your name and password",
    name_label: "Name",
    password_label: "Password",
    token_heading: "Join with a token (headsets, kiosks)",
    token_label: "Token",
    token_hint: "Paste the token (a long code) your administrator gave you.",
    choose_channel: "Choose a channel",
    signed_in_as: "Signed in as {name}",
    no_channels: "You are not a member of any channel yet. Ask your supervisor or administrator to add you to one.",
    signout: "Sign out",
    signed_out: "You have signed out.",
    err_code: "The code is wrong, has expired or was already used. Ask for a new code.",
    err_password: "The name or password is wrong.",
    err_locked: "Too many attempts. Try again in {seconds} s.",
    err_network: "Cannot reach the server. Check the connection and try again.",
    err_empty_code: "Type the sign-in code first.",
    err_empty_password: "Type your name and password.",
    session_expired: "Your sign-in has expired. Sign in again to talk.",
    session_revoked: "You were signed out (on another device or by an administrator). Sign in again.",
    user_disabled: "This account is disabled. Contact your administrator.",
    channel_removed: "You are no longer a member of this channel.",
    channel_gone: "This channel no longer exists.",
    session_warning: "Your sign-in ends at {time} and the call ends with it. Then sign in again with a new code.",
    channel_label: "Channel",
    join: "Join",
    leave: "Leave",
    switch: "Switch",
    tap_to_start: "Tap to start audio",
    tap_hint: "The browser keeps sound off until you tap once.",
    mode_handsfree: "Hands-free",
    mode_ptt: "Push to talk",
    ptt_hold: "Hold to talk",
    ptt_hint: "Or hold the space bar.",
    you: "You",
    talking: "talking",
    sending: "Sending",
    listening: "Listening",
    channel_busy: "Channel busy: every talk slot is taken. You are still recorded.",
    listen_only: "Listen only: you hear this channel but cannot talk in it.",
    emergency_hold: "Emergency: hold 2 s",
    emergency_tap_cancel: "Tap to cancel",
    emergency_countdown: "Sending an emergency in {seconds} s",
    emergency_cancelled: "Emergency cancelled: nothing was sent.",
    emergency_sending: "Sending the emergency…",
    emergency_open: "Emergency sent: your microphone is open, speak now.",
    emergency_acknowledged: "{name} acknowledged your emergency.",
    emergency_resolved: "Your emergency is closed.",
    emergency_still_open: "Your emergency is still open.",
    emergency_cancel_own: "Cancel my emergency",
    emergency_location: "Send my location with an emergency (this device)",
    emergency_other: "{name} raised an emergency.",
    cutting_in: "{name} is cutting in",
    announcement_playing: "Announcement from {name}",
    direct_talk: "{name} is talking to you",
    replay_missed: "{n} messages while you were away",
    replay_play: "Play",
    replay_recent: "Last 24 hours",
    replay_older: "Older",
    replay_transcribing: "(transcribing…)",
    preempted: "{name} cut in: you are not heard until a slot frees (you are still recorded).",
    state_idle: "Not connected",
    state_connecting: "Connecting…",
    state_joined: "Connected",
    state_reconnecting: "Connection lost. Reconnecting…",
    state_media: "Connecting audio…",
    in_channel: "In the channel",
    nobody: "Nobody else is here yet.",
    token_expiring: "Your token expires at {time}. Paste a new token to stay connected.",
    token_refreshed: "Sign-in renewed.",
    update_token: "Renew sign-in",
    error_token: "The token was refused: {message}",
    error_channel: "You cannot join this channel: {message}",
    error_replaced: "This device joined from another tab or window.",
    error_mic: "No microphone: {message}",
    error_generic: "Error: {message}",
    left: "You left the channel.",
    settings: "Settings",
    noise_suppression: "Noise suppression",
    wake_lock_on: "Screen kept on",
    no_token: "Paste a token first.",
  },
  ja: {
    title: "ボイス",
    signin_heading: "サインイン",
    signin: "サインイン",
    signing_in: "サインインしています…",
    code_label: "サインインコード",
    code_hint: "QRコードを読み取るか、受け取った8文字のコードを入力してください。",
    password_heading: "または名前とパスワードで",
    name_label: "名前（ユーザー名）",
    password_label: "パスワード",
    token_heading: "トークンで参加（ヘッドセット・専用端末）",
    token_label: "トークン",
    token_hint: "管理者から受け取ったトークン（長いコード）を貼り付けてください。",
    choose_channel: "チャンネルを選んでください",
    signed_in_as: "{name} さんとしてサインイン中",
    no_channels: "参加できるチャンネルがまだありません。スーパーバイザーか管理者に、チャンネルへの追加を依頼してください。",
    signout: "サインアウト",
    signed_out: "サインアウトしました。",
    err_code: "コードが正しくないか、有効期限切れか、使用済みです。新しいコードを受け取ってください。",
    err_password: "名前またはパスワードが違います。",
    err_locked: "試行回数が多すぎます。{seconds} 秒後にもう一度お試しください。",
    err_network: "サーバーに接続できません。通信状態を確認して、もう一度お試しください。",
    err_empty_code: "サインインコードを入力してください。",
    err_empty_password: "名前とパスワードを入力してください。",
    session_expired: "サインインの有効期限が切れました。通話するには、もう一度サインインしてください。",
    session_revoked: "サインアウトされました（別の端末から、または管理者の操作による）。もう一度サインインしてください。",
    user_disabled: "このアカウントは無効になっています。管理者に連絡してください。",
    channel_removed: "このチャンネルのメンバーではなくなりました。",
    channel_gone: "このチャンネルはありません。",
    session_warning: "サインインの有効期限は {time} です。その時刻に通話も終了します。その後、新しいコードでもう一度サインインしてください。",
    channel_label: "チャンネル",
    join: "参加",
    leave: "退出",
    switch: "切替",
    tap_to_start: "タップして音声を開始",
    tap_hint: "ブラウザは一度タップするまで音を出しません。",
    mode_handsfree: "ハンズフリー",
    mode_ptt: "プッシュトーク",
    ptt_hold: "押している間話す",
    ptt_hint: "スペースキーを押し続けても話せます。",
    you: "自分",
    talking: "発話中",
    sending: "送信中",
    listening: "受信待ち",
    channel_busy: "チャンネルが混雑しています（発話枠がすべて使用中）。音声は記録されています。",
    listen_only: "聞くだけ: このチャンネルを聞くことはできますが、発言はできません。",
    emergency_hold: "緊急通報: 2秒長押し",
    emergency_tap_cancel: "タップで取り消し",
    emergency_countdown: "あと {seconds} 秒で緊急通報を送ります",
    emergency_cancelled: "緊急通報を取り消しました。何も送られていません。",
    emergency_sending: "緊急通報を送信中…",
    emergency_open: "緊急通報を送りました。マイクが開いています。話してください。",
    emergency_acknowledged: "{name} さんが緊急通報に対応しました。",
    emergency_resolved: "緊急通報は完了しました。",
    emergency_still_open: "緊急通報はまだ対応中です。",
    emergency_cancel_own: "自分の緊急通報を取り消す",
    emergency_location: "緊急通報で位置情報を送る(この端末)",
    emergency_other: "{name} さんが緊急通報を出しました。",
    cutting_in: "{name} さんが割り込み中",
    announcement_playing: "{name} からのお知らせ",
    direct_talk: "{name} さんからあなたへの個別通話",
    replay_missed: "不在中のメッセージ {n} 件",
    replay_play: "再生",
    replay_recent: "過去24時間",
    replay_older: "さらに前",
    replay_transcribing: "(文字起こし中…)",
    preempted: "{name} さんが割り込みました。枠が空くまであなたの声は届きません（記録はされています）。",
    state_idle: "未接続",
    state_connecting: "接続中…",
    state_joined: "接続済み",
    state_reconnecting: "接続が切れました。再接続しています…",
    state_media: "音声を接続中…",
    in_channel: "チャンネルの参加者",
    nobody: "ほかにはまだ誰もいません。",
    token_expiring: "トークンの有効期限は {time} です。新しいトークンを貼り付けてください。",
    token_refreshed: "サインインを更新しました。",
    update_token: "サインインを更新",
    error_token: "トークンが拒否されました: {message}",
    error_channel: "このチャンネルには参加できません: {message}",
    error_replaced: "この端末は別のタブまたはウィンドウから参加しました。",
    error_mic: "マイクが使えません: {message}",
    error_generic: "エラー: {message}",
    left: "チャンネルから退出しました。",
    settings: "設定",
    noise_suppression: "ノイズ抑制",
    wake_lock_on: "画面を点灯したままにします",
    no_token: "先にトークンを貼り付けてください。",
  },
};

export function pickLanguage(languages) {
  for (const lang of languages || []) {
    const base = String(lang).toLowerCase().split("-")[0];
    if (base in STRINGS) return base;
  }
  return "en";
}

let current = "en";

export function setLanguage(lang) {
  current = lang in STRINGS ? lang : "en";
  document.documentElement.lang = current;
}

export function language() {
  return current;
}

export function t(key, params = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : ""));
}

// Fill every element carrying data-i18n (text) or data-i18n-placeholder / data-i18n-label.
export function applyTranslations(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  document.title = t("title");
}

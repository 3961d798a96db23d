// UI text in Japanese and English, chosen from the browser's languages. Text is only ever set
// with textContent (never as HTML), so nothing here or from the server can inject markup.

const STRINGS = {
  en: {
    title: "Voice",
    signin_heading: "Sign in",
    token_label: "Sign-in code (token)",
    token_hint: "Paste the code your administrator gave you.",
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
    state_idle: "Not connected",
    state_connecting: "Connecting…",
    state_joined: "Connected",
    state_reconnecting: "Connection lost. Reconnecting…",
    state_media: "Connecting audio…",
    in_channel: "In the channel",
    nobody: "Nobody else is here yet.",
    token_expiring: "Your sign-in expires at {time}. Paste a new code to stay connected.",
    token_refreshed: "Sign-in renewed.",
    update_token: "Renew sign-in",
    error_token: "The sign-in code was refused: {message}",
    error_channel: "You cannot join this channel: {message}",
    error_replaced: "This device joined from another tab or window.",
    error_mic: "No microphone: {message}",
    error_generic: "Error: {message}",
    left: "You left the channel.",
    settings: "Settings",
    noise_suppression: "Noise suppression",
    wake_lock_on: "Screen kept on",
    no_token: "Paste a sign-in code first.",
  },
  ja: {
    title: "ボイス",
    signin_heading: "サインイン",
    token_label: "サインインコード（トークン）",
    token_hint: "管理者から受け取ったコードを貼り付けてください。",
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
    state_idle: "未接続",
    state_connecting: "接続中…",
    state_joined: "接続済み",
    state_reconnecting: "接続が切れました。再接続しています…",
    state_media: "音声を接続中…",
    in_channel: "チャンネルの参加者",
    nobody: "まだ誰もいません。",
    token_expiring: "サインインの有効期限は {time} です。新しいコードを貼り付けてください。",
    token_refreshed: "サインインを更新しました。",
    update_token: "サインインを更新",
    error_token: "サインインコードが拒否されました: {message}",
    error_channel: "このチャンネルには参加できません: {message}",
    error_replaced: "この端末は別のタブまたはウィンドウから参加しました。",
    error_mic: "マイクが使えません: {message}",
    error_generic: "エラー: {message}",
    left: "チャンネルから退出しました。",
    settings: "設定",
    noise_suppression: "ノイズ抑制",
    wake_lock_on: "画面を点灯したままにします",
    no_token: "先にサインインコードを貼り付けてください。",
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

//! The outbound half of every channel: how a message already composed, queued and
//! registered reaches the citizen (SMTP for e-mail and PEC, the fax gateway, the SMS
//! gateway, WhatsApp Cloud API, Telegram Bot API).

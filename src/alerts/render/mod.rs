//! How an alert becomes words: the subject and short text, the email a
//! responder reads, the custom-notification JSON AWS Chatbot shows in chat,
//! and the SNS message that carries them within SNS's size limit.

mod chatbot;
mod sns;
mod text;
mod trim;

pub use chatbot::chatbot;
pub use sns::{Fifo, MAX_MESSAGE_BYTES, SnsMessage, sns_message};
pub use text::{console_link, email, short_text, subject};
pub use trim::trim_step;

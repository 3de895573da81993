//! Error messages a user can act on: what went wrong, and what to do.

use super::client::InfoError;
use super::settings::Settings;
use crate::error::Error;

impl InfoError {
    pub(super) fn into_error(self, id: &str, settings: &Settings) -> Error {
        self.into_error_tried(id, &[], settings)
    }

    /// As [`InfoError::into_error`], naming the repositories `also` tried.
    pub(super) fn into_error_tried(self, id: &str, also: &[String], settings: &Settings) -> Error {
        let endpoint = &settings.endpoint;
        let message = match self {
            InfoError::NotFound { status } => {
                let also = match also {
                    [] => String::new(),
                    [only] if only == id => String::new(),
                    ids => format!(" (tried {})", quoted_list(ids)),
                };
                let token_hint = if settings.token.is_some() {
                    "the token in use does not give access to it"
                } else {
                    "pass token='hf_...', set HF_TOKEN, or log in with `hf auth login`"
                };
                format!(
                    "{id:?} is not a model repository on {endpoint}{also} (HTTP {status}): check \
                     the model id, or pass the path of a local model directory. If it is a private \
                     or gated model, {token_hint}."
                )
            }
            InfoError::RevisionNotFound => format!(
                "revision {:?} not found in {id:?} on {endpoint}: use an existing branch, tag or \
                 full commit hash",
                settings.revision
            ),
            InfoError::Denied { status, code } => {
                denied_message(id, status, code.as_deref(), settings)
            }
            InfoError::Unreachable(why) => format!("cannot reach {endpoint}: {why}"),
            InfoError::Invalid(why) => format!(
                "unexpected answer from {endpoint} about {id:?}: {why} (is HF_ENDPOINT a \
                 Hugging Face hub?)"
            ),
        };
        Error::Hub(message)
    }
}

/// `"a", "b"`.
pub(super) fn quoted_list(ids: &[String]) -> String {
    ids.iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A 401 or 403 for `id`, with `code` from `X-Error-Code`.
pub(super) fn denied_message(
    id: &str,
    status: u16,
    code: Option<&str>,
    settings: &Settings,
) -> String {
    let endpoint = &settings.endpoint;
    let gated = code == Some("GatedRepo");
    match (status, settings.token.is_some()) {
        (401, false) => format!(
            "{id:?} needs authentication (HTTP 401: a {} model) and no token was found: pass \
             token='hf_...', set HF_TOKEN, or log in with `hf auth login`. For a gated model, \
             also accept its conditions at {endpoint}/{id}.",
            if gated { "gated" } else { "private or gated" }
        ),
        (401, true) => format!(
            "{endpoint} did not accept the token for {id:?} (HTTP 401): check that the token is \
             valid and has read access"
        ),
        _ => format!(
            "access to {id:?} is restricted (HTTP {status}{}): request access at \
             {endpoint}/{id} with the account whose token you use",
            if gated { ", a gated model" } else { "" }
        ),
    }
}

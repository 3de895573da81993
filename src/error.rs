//! One error type for the whole core; the bindings map each kind to the
//! Python exception a user would expect.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path the user named does not exist (`FileNotFoundError`).
    #[error("{what} not found: {}", path.display())]
    NotFound { what: &'static str, path: PathBuf },

    /// The model files exist but cannot be used (`OSError`).
    #[error("{0}")]
    InvalidModel(String),

    /// A `model_type` with no implementation here (`ValueError`).
    #[error("model_type {model_type:?} is not supported by crossrank; supported model types: {}", supported.join(", "))]
    UnsupportedModel {
        model_type: String,
        supported: &'static [&'static str],
    },

    /// Bad arguments or inputs (`ValueError`).
    #[error("{0}")]
    InvalidInput(String),

    /// Downloading or resolving a model id failed (`OSError`).
    #[error("{0}")]
    Hub(String),

    /// The caller asked to stop (Ctrl-C from Python).
    #[error("interrupted")]
    Interrupted,

    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("tokenizer error: {0}")]
    Tokenizer(String),

    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl Error {
    pub fn invalid_model(msg: impl Into<String>) -> Self {
        Error::InvalidModel(msg.into())
    }

    pub fn invalid_input(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<tokenizers::Error> for Error {
    fn from(e: tokenizers::Error) -> Self {
        Error::Tokenizer(e.to_string())
    }
}

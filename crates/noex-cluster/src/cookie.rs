//! The cluster secret ("cookie"): from the config, else `NOEX_COOKIE`, else `~/.noex.cookie`, created on first use.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ConfigError;

/// The environment variable read when no cookie is configured.
pub const COOKIE_ENV: &str = "NOEX_COOKIE";

/// The file in the home directory read (or created) when neither config nor environment gives a cookie.
pub const COOKIE_FILE: &str = ".noex.cookie";

/// A shared cluster secret. Its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(Vec<u8>);

impl Cookie {
    /// A cookie from the given secret (used as raw bytes). Empty secrets are refused at start.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Cookie(secret.into())
    }

    /// The secret's bytes, the HMAC key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The cookie a node uses when none is configured: `NOEX_COOKIE` if set, else the home cookie file.
    pub fn from_environment() -> Result<Self, ConfigError> {
        if let Some(secret) = std::env::var_os(COOKIE_ENV) {
            let secret = secret.into_encoded_bytes();
            if secret.is_empty() {
                return Err(ConfigError::Cookie(format!("{COOKIE_ENV} is set but empty")));
            }
            return Ok(Cookie(secret));
        }
        let path = default_cookie_path().ok_or_else(|| ConfigError::Cookie("no home directory".into()))?;
        Self::from_file(&path)
    }

    /// Reads the cookie file, creating it (mode 0600, 32 random bytes, hex) if it does not exist, as Erlang does
    /// with `~/.erlang.cookie`: nodes of one user on one machine then share it without setup.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let fail =
            |what: &str, error: &dyn fmt::Display| ConfigError::Cookie(format!("{what} {}: {error}", path.display()));
        match std::fs::read(path) {
            Ok(contents) => {
                let secret = contents.trim_ascii().to_vec();
                if secret.is_empty() {
                    return Err(ConfigError::Cookie(format!("{} is empty", path.display())));
                }
                Ok(Cookie(secret))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut random = [0u8; 32];
                getrandom::fill(&mut random).map_err(|e| fail("cannot generate a secret for", &e))?;
                let secret: String = random.iter().map(|b| format!("{b:02x}")).collect();
                match create_private(path, secret.as_bytes()) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "created a new cluster cookie");
                        Ok(Cookie(secret.into_bytes()))
                    }
                    // Another node created it first (nodes started together): use theirs.
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Self::from_file(path),
                    Err(error) => Err(fail("cannot create", &error)),
                }
            }
            Err(error) => Err(fail("cannot read", &error)),
        }
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cookie(<redacted>)")
    }
}

/// Creates `path`, readable and writable by its owner only, complete or not at all: the contents go to a
/// temporary file that is then linked into place, so a concurrent reader never sees a half-written cookie.
/// Fails with `AlreadyExists` if another process created `path` first.
fn create_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("tmp-{}-{}", std::process::id(), getrandom::u32().unwrap_or(0)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.write_all(b"\n")?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    linked
}

/// Where the home cookie file is, for messages and tests.
pub fn default_cookie_path() -> Option<PathBuf> {
    std::env::home_dir().map(|home| home.join(COOKIE_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_cookie_file_is_created_private_and_then_reused() {
        let dir = std::env::temp_dir().join(format!("noex-cookie-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(COOKIE_FILE);
        let _ = std::fs::remove_file(&path);
        let created = Cookie::from_file(&path).unwrap();
        assert_eq!(created.as_bytes().len(), 64, "32 random bytes, hex");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(Cookie::from_file(&path).unwrap(), created, "the same secret next time");
        std::fs::write(&path, b"  \n").unwrap();
        assert!(Cookie::from_file(&path).is_err(), "an empty file is an error, not an empty secret");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(format!("{created:?}"), "Cookie(<redacted>)");
    }
}

//! The cluster secret ("cookie") and where a node finds it, first match wins: the configured cookie, the
//! configured cookie file, `NOEX_COOKIE`, `~/.noex.cookie` (created on first use). A cookie file that exists is
//! refused if its group or others may read or write it, as Erlang refuses `~/.erlang.cookie`.

use std::fmt;
use std::io::{Read, Write};
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

    /// The cookie a node uses, by precedence: `configured`, else the file `configured_file` (which must exist),
    /// else `NOEX_COOKIE`, else the home cookie file (created if missing).
    pub fn resolve(configured: Option<&Cookie>, configured_file: Option<&Path>) -> Result<Self, ConfigError> {
        match (configured, configured_file) {
            (Some(cookie), _) if cookie.as_bytes().is_empty() => Err(ConfigError::Cookie("the cookie is empty".into())),
            (Some(cookie), _) => Ok(cookie.clone()),
            (None, Some(path)) => Self::read_file(path),
            (None, None) => Self::from_environment(),
        }
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
    /// with `~/.erlang.cookie`: nodes of one user on one machine then share it without setup. An existing file
    /// that its group or others may access is refused (see [`read_file`](Self::read_file)).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        if let Some(cookie) = read_existing(path)? {
            return Ok(cookie);
        }
        let fail =
            |what: &str, error: &dyn fmt::Display| ConfigError::Cookie(format!("{what} {}: {error}", path.display()));
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| fail("cannot generate a secret for", &e))?;
        let secret: String = random.iter().map(|b| format!("{b:02x}")).collect();
        match create_private(path, secret.as_bytes()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created a new cluster cookie");
                Ok(Cookie(secret.into_bytes()))
            }
            // Another node created it first (nodes started together): use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Self::read_file(path),
            Err(error) => Err(fail("cannot create", &error)),
        }
    }

    /// Reads an existing cookie file (surrounding whitespace is not part of the secret). Refused, with a message
    /// that says how to fix it, if the file is missing, empty, or open to its group or others: a secret that other
    /// users can read is no secret (Erlang refuses such a `~/.erlang.cookie` too).
    pub fn read_file(path: &Path) -> Result<Self, ConfigError> {
        read_existing(path)?
            .ok_or_else(|| ConfigError::Cookie(format!("cookie file {} does not exist", path.display())))
    }
}

/// The cookie in `path`, or `None` if there is no such file.
fn read_existing(path: &Path) -> Result<Option<Cookie>, ConfigError> {
    let fail = |error: &dyn fmt::Display| ConfigError::Cookie(format!("cannot read {}: {error}", path.display()));
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(fail(&error)),
    };
    // Checked on the open file, so that what is checked is what is read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(|e| fail(&e))?.permissions().mode();
        if let Some(problem) = exposure(mode) {
            let path = path.display();
            return Err(ConfigError::Cookie(format!(
                "cookie file {path} is {problem} (mode {:04o}); run: chmod 600 {path}",
                mode & 0o7777
            )));
        }
    }
    let mut contents = Vec::new();
    file.read_to_end(&mut contents).map_err(|e| fail(&e))?;
    let secret = contents.trim_ascii().to_vec();
    if secret.is_empty() {
        return Err(ConfigError::Cookie(format!("cookie file {} is empty", path.display())));
    }
    Ok(Some(Cookie(secret)))
}

/// What is wrong with a cookie file's permission bits, if anything: any access by its group or by others.
#[cfg(unix)]
fn exposure(mode: u32) -> Option<String> {
    let open = mode & 0o077;
    if open == 0 {
        return None;
    }
    let who = if open & 0o007 != 0 { "others" } else { "its group" };
    let how = if open & 0o044 != 0 {
        "readable"
    } else if open & 0o022 != 0 {
        "writable"
    } else {
        "accessible"
    };
    Some(format!("{how} by {who}"))
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

    /// A fresh directory for one test.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("noex-cookie-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_missing_cookie_file_is_created_private_and_then_reused() {
        let dir = scratch("created");
        let path = dir.join(COOKIE_FILE);
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

    #[test]
    fn precedence_is_cookie_then_file_and_a_given_file_must_exist() {
        let dir = scratch("precedence");
        let path = dir.join("cookie");
        let missing = Cookie::resolve(None, Some(&path)).unwrap_err().to_string();
        assert_eq!(missing, format!("cannot obtain the cluster cookie: cookie file {} does not exist", path.display()));
        assert!(!path.exists(), "a given file is never created: a typo would split the cluster");
        write_private(&path, b"from-file\n");
        assert_eq!(Cookie::resolve(None, Some(&path)).unwrap(), Cookie::new("from-file"));
        let flag = Cookie::new("from-flag");
        assert_eq!(Cookie::resolve(Some(&flag), Some(&path)).unwrap(), flag);
        assert!(Cookie::resolve(Some(&Cookie::new("")), None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_cookie_file_open_to_others_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("exposed");
        let path = dir.join(COOKIE_FILE);
        write_private(&path, b"secret");
        for (mode, problem) in [
            (0o644, "readable by others"),
            (0o640, "readable by its group"),
            (0o602, "writable by others"),
            (0o610, "accessible by its group"),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let p = path.display();
            let expected = format!(
                "cannot obtain the cluster cookie: cookie file {p} is {problem} (mode {mode:04o}); run: chmod 600 {p}"
            );
            assert_eq!(Cookie::read_file(&path).unwrap_err().to_string(), expected);
            assert_eq!(Cookie::from_file(&path).unwrap_err().to_string(), expected, "the default file too");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(Cookie::read_file(&path).unwrap(), Cookie::new("secret"), "read-only for its owner is fine");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn write_private(path: &Path, contents: &[u8]) {
        let _ = std::fs::remove_file(path);
        create_private(path, contents).unwrap();
    }
}

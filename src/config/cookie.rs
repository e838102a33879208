//! Where the distribution cookie comes from, in Erlang's spirit: `--cookie`, then
//! `--cookie-file`, then `CLUSTER_COOKIE`, then `~/.erlang.cookie`, which is created with 20
//! random uppercase letters and mode 0400 when missing, as `erl` does. A cookie file that group
//! or others can read or write is refused, as erl refuses it: anyone who can read it can join
//! the cluster, and anyone who can write it can lock the node out.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::Rng;
use thiserror::Error;

use crate::dist::Cookie;

/// Errors resolving the cookie.
#[derive(Debug, Error)]
pub enum CookieError {
    /// The file could not be read or created.
    #[error("cookie file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file's mode lets group or others read or write it.
    #[error("cookie file {} must be accessible by its owner only (mode {mode:o}); run: chmod 400 {}", .path.display(), .path.display())]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file or value holds no cookie.
    #[error("cookie from {0} is empty")]
    Empty(String),
    /// No home directory to find `~/.erlang.cookie` in.
    #[error("no home directory for ~/.erlang.cookie; pass --cookie or --cookie-file")]
    NoHome,
}

/// Where a cookie may come from, in precedence order.
#[derive(Debug, Default, Clone)]
pub struct CookieSources {
    /// `--cookie`.
    pub flag: Option<String>,
    /// `--cookie-file`.
    pub file: Option<PathBuf>,
    /// `CLUSTER_COOKIE`.
    pub env: Option<String>,
    /// The home directory holding `.erlang.cookie`.
    pub home: Option<PathBuf>,
}

impl CookieSources {
    /// The sources of this process: the given flags, the environment and `$HOME`.
    pub fn from_process(flag: Option<String>, file: Option<PathBuf>) -> CookieSources {
        CookieSources {
            flag,
            file,
            env: std::env::var("CLUSTER_COOKIE").ok(),
            home: directories::BaseDirs::new().map(|d| d.home_dir().to_owned()),
        }
    }

    /// Resolves the cookie, creating `~/.erlang.cookie` if it is the source and is missing.
    pub fn resolve(&self) -> Result<Cookie, CookieError> {
        self.resolve_with_source().map(|(cookie, _)| cookie)
    }

    /// Resolves the cookie and says where it came from, for messages about a rejected
    /// cookie ("our cookie came from ~/.erlang.cookie, created just now…").
    pub fn resolve_with_source(&self) -> Result<(Cookie, CookieSource), CookieError> {
        if let Some(value) = &self.flag {
            return Ok((non_empty(value, "--cookie")?, CookieSource::Flag));
        }
        if let Some(path) = &self.file {
            return Ok((read_cookie_file(path)?, CookieSource::File(path.clone())));
        }
        if let Some(value) = &self.env {
            return Ok((non_empty(value, "CLUSTER_COOKIE")?, CookieSource::Env));
        }
        let home = self.home.as_ref().ok_or(CookieError::NoHome)?;
        let path = home.join(".erlang.cookie");
        let created = !path.exists();
        if created {
            create_cookie_file(&path)?;
        }
        Ok((
            read_cookie_file(&path)?,
            CookieSource::Home { path, created },
        ))
    }
}

/// Where the cookie in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieSource {
    /// `--cookie`.
    Flag,
    /// `--cookie-file PATH`.
    File(PathBuf),
    /// `CLUSTER_COOKIE`.
    Env,
    /// `~/.erlang.cookie`; `created` when this run made it (with a random cookie, which no
    /// other node can know).
    Home {
        /// The file.
        path: PathBuf,
        /// Whether it was created just now.
        created: bool,
    },
}

impl std::fmt::Display for CookieSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CookieSource::Flag => f.write_str("--cookie"),
            CookieSource::File(p) => write!(f, "--cookie-file {}", p.display()),
            CookieSource::Env => f.write_str("CLUSTER_COOKIE"),
            CookieSource::Home {
                path,
                created: false,
            } => write!(f, "{}", path.display()),
            CookieSource::Home {
                path,
                created: true,
            } => write!(f, "{}, just created with a random cookie", path.display()),
        }
    }
}

impl CookieSource {
    /// What to tell a user whose cookie a peer rejected.
    pub fn rejected_hint(&self) -> String {
        format!(
            "our cookie came from {self}; give the cluster's cookie with --cookie, \
             CLUSTER_COOKIE or ~/.erlang.cookie"
        )
    }
}

fn non_empty(value: &str, source: &str) -> Result<Cookie, CookieError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(CookieError::Empty(source.into()));
    }
    Ok(Cookie::new(value))
}

fn read_cookie_file(path: &Path) -> Result<Cookie, CookieError> {
    let io = |source| CookieError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    // As erl: the file must be accessible by its owner only (a cookie anyone can rewrite is
    // as bad as one anyone can read).
    if mode & 0o077 != 0 {
        return Err(CookieError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    // erl uses the first line; trailing whitespace is not part of the cookie.
    let first = text.lines().next().unwrap_or("");
    non_empty(first, &path.display().to_string())
}

fn create_cookie_file(path: &Path) -> Result<(), CookieError> {
    let mut rng = rand::thread_rng();
    let cookie: String = (0..20)
        .map(|_| rng.gen_range(b'A'..=b'Z') as char)
        .collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .map_err(|source| CookieError::Io {
            path: path.to_owned(),
            source,
        })?;
    file.write_all(cookie.as_bytes())
        .map_err(|source| CookieError::Io {
            path: path.to_owned(),
            source,
        })?;
    tracing::info!("created {} with a random cookie", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path) -> CookieSources {
        CookieSources {
            home: Some(dir.to_owned()),
            ..CookieSources::default()
        }
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn precedence_flag_file_env_home() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c");
        write(&file, "fromfile\n", 0o600);
        write(&dir.path().join(".erlang.cookie"), "fromhome", 0o400);
        let mut s = sources(dir.path());
        assert_eq!(s.resolve().unwrap().expose(), "fromhome");
        s.env = Some("fromenv".into());
        assert_eq!(s.resolve().unwrap().expose(), "fromenv");
        s.file = Some(file);
        assert_eq!(s.resolve().unwrap().expose(), "fromfile");
        s.flag = Some("fromflag".into());
        assert_eq!(s.resolve().unwrap().expose(), "fromflag");
    }

    #[test]
    fn missing_home_cookie_is_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let cookie = sources(dir.path()).resolve().unwrap();
        assert_eq!(cookie.expose().len(), 20);
        assert!(cookie.expose().chars().all(|c| c.is_ascii_uppercase()));
        let path = dir.path().join(".erlang.cookie");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        // The same cookie on the next start.
        assert_eq!(sources(dir.path()).resolve().unwrap(), cookie);
    }

    #[test]
    fn cookie_files_open_to_group_or_others_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o622, 0o602, 0o620, 0o610] {
            let file = dir.path().join(format!("c{mode:o}"));
            write(&file, "x", mode);
            let s = CookieSources {
                file: Some(file),
                ..sources(dir.path())
            };
            let err = s.resolve().unwrap_err().to_string();
            assert!(
                err.contains("accessible by its owner only"),
                "{mode:o}: {err}"
            );
            assert!(err.contains("chmod 400"), "{err}");
        }
        for mode in [0o400, 0o600] {
            let file = dir.path().join(format!("ok{mode:o}"));
            write(&file, "fine", mode);
            let s = CookieSources {
                file: Some(file),
                ..sources(dir.path())
            };
            assert_eq!(s.resolve().unwrap(), Cookie::new("fine"), "{mode:o}");
        }
    }

    #[test]
    fn the_source_is_reported_with_the_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sources(dir.path());
        let (_, first) = s.resolve_with_source().unwrap();
        assert!(
            matches!(&first, CookieSource::Home { created: true, .. }),
            "{first:?}"
        );
        assert!(first.to_string().contains("just created"), "{first}");
        let (_, again) = s.resolve_with_source().unwrap();
        assert!(matches!(again, CookieSource::Home { created: false, .. }));
        s.env = Some("e".into());
        assert_eq!(s.resolve_with_source().unwrap().1, CookieSource::Env);
        s.flag = Some("f".into());
        let (_, flag) = s.resolve_with_source().unwrap();
        assert_eq!(flag, CookieSource::Flag);
        assert!(flag.rejected_hint().contains("--cookie"));
    }

    #[test]
    fn empty_cookie_is_an_error() {
        let s = CookieSources {
            flag: Some("  ".into()),
            ..CookieSources::default()
        };
        assert!(matches!(s.resolve(), Err(CookieError::Empty(_))));
    }
}

//! Configuration: the roles file and where to find it.
//!
//! Configuration is validated once, up front, into plain resolved types, so the rest of the
//! program never re-checks it and a mistake is reported before anything starts.

pub mod cookie;
pub mod roles;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use roles::{ClusterDefaults, Mesh, ProcessType, Restart, Role, RolesFile, ECHO_TYPE};

/// The roles file's name, in the current directory and in the user's config directory.
pub const ROLES_FILE_NAME: &str = "roles.toml";

/// Errors in configuration files. The CLI exits with status 2 for these.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid: bad TOML, an unknown key, a bad type, or a semantic error.
    #[error("{}:{line}:{column}: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A role that the roles file does not declare.
    #[error("unknown role {role:?}; {} declares: {declared}", .path.display())]
    UnknownRole {
        /// The role asked for.
        role: String,
        /// The roles file.
        path: PathBuf,
        /// The roles it declares.
        declared: String,
    },
    /// No roles file was given and none was found in the usual places.
    #[error("no roles file found (looked for {}); pass --roles PATH or set CLUSTER_ROLES", display_paths(.searched))]
    NotFound {
        /// Where we looked.
        searched: Vec<PathBuf>,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The user's config directory for `cluster` (e.g. `~/.config/cluster` on Linux).
pub fn user_config_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "cluster").map(|d| d.config_dir().to_owned())
}

/// Where a roles file is looked for when none is named: `./roles.toml`, then `roles.toml` in
/// the user's config directory.
pub fn roles_search_paths() -> Vec<PathBuf> {
    let mut searched = vec![PathBuf::from(ROLES_FILE_NAME)];
    if let Some(dir) = user_config_dir() {
        searched.push(dir.join(ROLES_FILE_NAME));
    }
    searched
}

/// Where the roles file is: the explicit path when given, else `./roles.toml`, else
/// `roles.toml` in the user's config directory.
pub fn resolve_roles_path(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let searched = roles_search_paths();
    match searched.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(ConfigError::NotFound { searched }),
    }
}

/// Finds, reads and validates the roles file.
pub fn load_roles(explicit: Option<&Path>) -> Result<RolesFile, ConfigError> {
    RolesFile::load(&resolve_roles_path(explicit)?)
}

/// The roles of the repository's `roles.toml`, compiled in: what a node started outside any
/// project directory runs with, so `cluster start --role beacon …` works from anywhere, and
/// what `cluster roles --default` prints to start a file from.
pub const BUILTIN_ROLES: &str = include_str!("../../roles.toml");

/// The name the built-in roles go by in messages.
pub const BUILTIN_ROLES_NAME: &str = "(built-in roles.toml)";

/// The built-in roles, validated (they are checked by a test, so this cannot fail at run
/// time unless the file in the repository is broken).
pub fn builtin_roles() -> Result<RolesFile, ConfigError> {
    RolesFile::parse(Path::new(BUILTIN_ROLES_NAME), BUILTIN_ROLES)
}

/// Where the roles came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolesSource {
    /// A file that was named or found.
    File,
    /// No file was named or found: the built-in roles.
    Builtin,
}

/// Like [`load_roles`], but falls back to the built-in roles when no file was named and
/// none was found. A file that was named, or found and broken, is still an error.
pub fn load_roles_or_builtin(
    explicit: Option<&Path>,
) -> Result<(RolesFile, RolesSource), ConfigError> {
    match load_roles(explicit) {
        Ok(file) => Ok((file, RolesSource::File)),
        Err(ConfigError::NotFound { .. }) => Ok((builtin_roles()?, RolesSource::Builtin)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_roles_are_valid_and_name_every_seed_role() {
        let file = builtin_roles().expect("built-in roles.toml is valid");
        for role in [
            "beacon",
            "gate_manager",
            "gate",
            "data_contact",
            "data_service",
        ] {
            assert!(file.role(role).is_some(), "built-in roles lack {role}");
        }
        assert_eq!(file.path, Path::new(BUILTIN_ROLES_NAME));
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error_not_the_builtin() {
        let err = load_roles_or_builtin(Some(Path::new("/nonexistent/roles.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }
}

//! Why this exists: every command must find the same embedded queue and job table, wherever
//! it is started. The data home therefore never depends on the working directory:
//! `$EASEL_DATA_DIR`, else `data_dir` in `easel.toml`, else the platform's data directory
//! (`$XDG_DATA_HOME/easel`, i.e. `~/.local/share/easel` on Linux).

use std::path::{Path, PathBuf};

use crate::consts::CONFIG_FILE;

/// The platform's data directory for Easel, from the environment `env` gives.
/// `None` when neither `XDG_DATA_HOME` (absolute) nor `HOME` is set.
pub fn platform_data_home(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(xdg) = env("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Some(xdg.join("easel"));
    }
    let home = env("HOME").map(PathBuf::from).filter(|p| p.is_absolute())?;
    if cfg!(target_os = "macos") {
        return Some(home.join("Library/Application Support/easel"));
    }
    Some(home.join(".local/share/easel"))
}

/// `path` made absolute: against `base` (the directory of the file that named it), or the
/// working directory when it came from a flag or the environment.
pub fn absolute(path: &Path, base: Option<&Path>) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let joined = match base {
        Some(b) => b.join(path),
        None => path.to_path_buf(),
    };
    std::path::absolute(&joined).unwrap_or(joined)
}

/// The process environment, empty values treated as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The configuration file to read: `explicit`, else `$EASEL_CONFIG`, else `./easel.toml` if
/// it exists, else none (embedded defaults).
pub fn config_file(explicit: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = env("EASEL_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let here = PathBuf::from(CONFIG_FILE);
    here.is_file().then_some(here)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn xdg_data_home_wins_over_home() {
        let got = platform_data_home(&env(&[("XDG_DATA_HOME", "/x/data"), ("HOME", "/home/u")]));
        assert_eq!(got, Some(PathBuf::from("/x/data/easel")));
    }

    #[test]
    fn home_gives_the_local_share_directory() {
        let got = platform_data_home(&env(&[("HOME", "/home/u"), ("XDG_DATA_HOME", "relative")]));
        if !cfg!(target_os = "macos") {
            assert_eq!(got, Some(PathBuf::from("/home/u/.local/share/easel")));
        }
        assert_eq!(platform_data_home(&env(&[])), None);
    }

    #[test]
    fn relative_paths_are_taken_from_the_file_that_names_them() {
        assert_eq!(
            absolute(Path::new("d"), Some(Path::new("/etc/easel"))),
            PathBuf::from("/etc/easel/d")
        );
        assert!(absolute(Path::new("d"), None).is_absolute());
    }
}

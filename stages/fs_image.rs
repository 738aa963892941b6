//! Pieces shared by the stages that pack a tree into a file system image
//! (`org.osbuild.squashfs`, `org.osbuild.erofs`, and for the image file also `org.osbuild.xorrisofs`
//! and `org.osbuild.cpio.out`): the directory to pack, the image file in
//! the tree, and the pipeline's source epoch.

use super::util::{location_parts, resolve_in_root, tree_path};
use super::{StageArgs, StageError};
use std::path::PathBuf;

/// The directory to pack: the `source` location (`mount://NAME/...` or `input://NAME/...`,
/// resolved inside that mount or input) or else the `tree` input.
pub fn source_dir(args: &StageArgs, source: Option<&str>) -> Result<PathBuf, StageError> {
    match source {
        Some(location) => {
            let (root, path) = location_parts(location, args)?;
            resolve_in_root(&root, &path, true)
        }
        None => args.input_path("tree"),
    }
}

/// The image file `filename` in the tree (a leading `/` is dropped, as upstream does), its
/// directories resolved inside the tree.
pub fn output_file(args: &StageArgs, filename: &str) -> Result<PathBuf, StageError> {
    let name = filename.trim_start_matches('/');
    if name.is_empty() {
        return Err(StageError::Invalid(format!("filename {filename:?} names no file")));
    }
    tree_path(args, name, true)
}

/// The pipeline's `source-epoch` as the engine hands it to a stage (`SOURCE_DATE_EPOCH`),
/// checked to be a number of seconds.
pub fn source_epoch_from_env() -> Result<Option<u64>, StageError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| StageError::Invalid(format!("SOURCE_DATE_EPOCH {s:?} is not a number of seconds"))),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn source_is_confined_to_its_input() {
        let t = tempfile::tempdir().unwrap();
        let input = t.path().join("input");
        std::fs::create_dir_all(input.join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", input.join("escape")).unwrap();
        let mut a = args(&t.path().join("tree"), json!({}));
        a.inputs.insert("tree".into(), json!({"path": input}));
        assert_eq!(source_dir(&a, None).unwrap(), input);
        assert_eq!(source_dir(&a, Some("input://tree/sub")).unwrap(), input.join("sub"));
        // an absolute symlink starts again at the input's root, never at the host's
        assert_eq!(source_dir(&a, Some("input://tree/escape")).unwrap(), input.join("etc"));
        assert!(source_dir(&a, Some("input://other/")).is_err());
        assert!(output_file(&a, "/").is_err());
        assert_eq!(output_file(&a, "/images/x.img").unwrap(), t.path().join("tree/images/x.img"));
    }
}

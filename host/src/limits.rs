//! AVA's names and limits in one place. Topology validation, the archive, the API and the CLI
//! all check through these, so a rule cannot drift into two that disagree (issue 16 found the
//! video-name rule written twice, 64 and 256 characters, and AVA's 24 hours three times).

use crate::time::TICKS_PER_SEC;

/// Longest span of media one request or job may cover: a manifest, a `content.mp4`, the
/// ranges of one batch job in total (AVA: 24 hours).
pub const MAX_SPAN_90K: i64 = 24 * 3600 * TICKS_PER_SEC;

/// Longest video name, in bytes. A video's name is its directory's name, and Linux file
/// systems (ext4, XFS, btrfs) take 255 bytes; AVA's suggested names
/// (`<text>-${System.TopologyName}-${System.PipelineName}`) need more than 64.
pub const MAX_VIDEO_NAME_LEN: usize = 255;

/// [`video_name_ok`] in words, for error messages.
pub const VIDEO_NAME_RULE: &str = "1-255 letters, digits, '-', '_' or '.', not starting with '.' or '-'";

/// Whether `name` may name a video ([`VIDEO_NAME_RULE`]). The small alphabet keeps names
/// path-safe (no `/`, no `..` as a whole name, no hidden files such as `.lock`) and a leading
/// `-` would read as an option to command-line tools.
pub fn video_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_VIDEO_NAME_LEN
        && !name.starts_with(['.', '-'])
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_video_name_rule() {
        for ok in ["cam", "a", "Cam_1.hd", "sample-cvr-video-CVRToVideoSink-pipeline1", &"v".repeat(255)] {
            assert!(video_name_ok(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".lock", "-x", "a/b", "a b", "é", &"v".repeat(256), "a\0b"] {
            assert!(!video_name_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_span_limit_is_a_day() {
        assert_eq!(MAX_SPAN_90K, 86_400 * 90_000);
    }
}

//! Lossless encoding of paths for the inner stage's JSON config: UTF-8 paths as plain
//! strings, anything else as `{"b": [bytes]}`.
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::os::unix::ffi::OsStringExt;

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Utf8(String),
    Bytes { b: Vec<u8> },
}

pub fn serialize<S: Serializer>(v: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    let reprs: Vec<Repr> = v
        .iter()
        .map(|p| match p.to_str() {
            Some(u) => Repr::Utf8(u.to_string()),
            None => Repr::Bytes { b: p.as_os_str().as_bytes().to_vec() },
        })
        .collect();
    reprs.serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    let reprs = Vec::<Repr>::deserialize(d)?;
    Ok(reprs
        .into_iter()
        .map(|r| match r {
            Repr::Utf8(s) => PathBuf::from(s),
            Repr::Bytes { b } => PathBuf::from(OsString::from_vec(b)),
        })
        .collect())
}

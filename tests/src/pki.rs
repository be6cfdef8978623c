//! Test certificates made with the `openssl` command (ci/setup.d/tools.sh installs it): a
//! CA, a server certificate for 127.0.0.1 signed by it, and client certificates, all PEM.
//! A missing `openssl` fails the test that needs it; it is never a silent skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate authority in a directory.
pub struct Ca {
    pub dir: PathBuf,
    pub name: String,
    pub cert: PathBuf,
    key: PathBuf,
}

/// A certificate and its key, signed by a [`Ca`].
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (ci/setup.d/tools.sh installs it): {e}"));
    assert!(output.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

impl Ca {
    /// A new self-signed CA named `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let cert = dir.join(format!("{name}-ca.pem"));
        let key = dir.join(format!("{name}-ca.key"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name} test CA"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                path_str(&key),
                "-out",
                path_str(&cert),
            ],
        );
        Self { dir: dir.to_owned(), name: name.to_owned(), cert, key }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, leaf: &str) -> Leaf {
        self.sign(leaf, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    }

    /// A client certificate.
    pub fn client(&self, leaf: &str) -> Leaf {
        self.sign(leaf, "extendedKeyUsage=clientAuth\n")
    }

    fn sign(&self, leaf: &str, extensions: &str) -> Leaf {
        let base = format!("{}-{leaf}", self.name);
        let [key, csr, cert, ext] = [".key", ".csr", ".pem", ".ext"].map(|suffix| self.dir.join(format!("{base}{suffix}")));
        std::fs::write(&ext, format!("basicConstraints=CA:FALSE\n{extensions}")).expect("write extensions");
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={base}"),
                "-keyout",
                path_str(&key),
                "-out",
                path_str(&csr),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                path_str(&csr),
                "-CA",
                path_str(&self.cert),
                "-CAkey",
                path_str(&self.key),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                path_str(&ext),
                "-out",
                path_str(&cert),
            ],
        );
        Leaf { cert, key }
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

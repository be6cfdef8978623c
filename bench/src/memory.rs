//! Memory of a server's process tree: which process is the server proper, its
//! RSS and peak RSS, and the totals over the tree (a launcher such as the npm
//! `codex` node script counts there, not in the server's own figures).

use serde_json::{json, Value};

use crate::error::Result;
use crate::fail;
use crate::procfs::{pick_server, process_tree, read_mem, ProcMem, TreeNode};

#[derive(Debug, Clone)]
pub struct TreeMemory {
    /// The process measured as "the server" (deepest in the tree).
    pub server: ProcMem,
    pub members: Vec<(TreeNode, ProcMem)>,
}

impl TreeMemory {
    pub fn rss_sum_kib(&self) -> u64 {
        self.members.iter().map(|(_, m)| m.rss_kib).sum()
    }

    pub fn hwm_max_kib(&self) -> u64 {
        self.members.iter().map(|(_, m)| m.hwm_kib).max().unwrap_or(0)
    }

    pub fn to_json(&self) -> Value {
        let members: Vec<Value> = self
            .members
            .iter()
            .map(|(node, m)| json!({"pid": m.pid, "comm": m.comm, "depth": node.depth, "rss_kib": m.rss_kib, "hwm_kib": m.hwm_kib}))
            .collect();
        json!({
            "server": {"pid": self.server.pid, "comm": self.server.comm,
                       "rss_kib": self.server.rss_kib, "hwm_kib": self.server.hwm_kib},
            "tree_processes": self.members.len(),
            "tree_rss_sum_kib": self.rss_sum_kib(),
            "tree_hwm_max_kib": self.hwm_max_kib(),
            "tree": members,
        })
    }
}

/// Samples every process under (and including) `root`.
pub fn sample(root: u32) -> Result<TreeMemory> {
    let members: Vec<(TreeNode, ProcMem)> =
        process_tree(root).into_iter().filter_map(|node| read_mem(node.pid).map(|m| (node, m))).collect();
    let Some((_, server)) = pick_server(&members) else { fail!("server process {root} is gone") };
    Ok(TreeMemory { server: server.clone(), members })
}

//! A real Streamable-HTTP MCP server (PyPI's `mcp`, its own transport under uvicorn)
//! driven through the executor's `http/request`, as a Codex MCP client running "through
//! the executor" does: initialize, tools/list, a tools/call answered as a stream of
//! server-sent events, the GET event stream, and the session's DELETE.

use executor_tests::http::PyServer;
use executor_tests::RpcClient as _;
use executor_tests::{b64, unb64, Executor};
use serde_json::{json, Value};

const DELTA: &str = "http/request/bodyDelta";
const PROTOCOL_VERSION: &str = "2025-06-18";

struct McpOverExecutor {
    server: Executor,
    url: String,
    session: Option<String>,
    next: u64,
}

/// What one POST or GET produced: status, headers, and the SSE events' data as JSON,
/// with how many body deltas carried them.
struct Answer {
    status: u64,
    headers: Vec<(String, String)>,
    events: Vec<Value>,
    deltas: usize,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The JSON of each `data:` line of a complete SSE stream.
fn sse_events(body: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .filter(|data| !data.is_empty())
        .map(|data| serde_json::from_str(&data).unwrap_or_else(|e| panic!("SSE data is not JSON: {e}: {data}")))
        .collect()
}

impl McpOverExecutor {
    fn headers(&self) -> Vec<Value> {
        let mut headers = vec![
            json!({"name":"Content-Type","value":"application/json"}),
            json!({"name":"Accept","value":"application/json, text/event-stream"}),
        ];
        if let Some(session) = &self.session {
            headers.push(json!({"name":"Mcp-Session-Id","value":session}));
            headers.push(json!({"name":"Mcp-Protocol-Version","value":PROTOCOL_VERSION}));
        }
        headers
    }

    /// Sends one HTTP request through the executor with a streamed response and collects
    /// the body until its last delta.
    fn exchange(&mut self, method: &str, body: Option<&Value>) -> Answer {
        self.next += 1;
        let request_id = format!("mcp-{}", self.next);
        let mut params = json!({"method":method,"url":self.url,"headers":self.headers(),"requestId":request_id,
            "streamResponse":true,"timeoutMs":20000});
        if let Some(body) = body {
            params["bodyBase64"] = json!(b64(body.to_string().as_bytes()));
        }
        let id = self.server.send_request("http/request", params);
        let response = self.server.response(id);
        let result = response.get("result").cloned().unwrap_or_else(|| panic!("http/request failed: {response}"));
        let mut bytes = Vec::new();
        let mut deltas = 0;
        loop {
            let delta = self.server.next_matching(|m| m["method"] == DELTA && m["params"]["requestId"] == json!(request_id));
            assert!(delta["params"]["error"].is_null(), "the body failed: {delta}");
            bytes.extend(unb64(delta["params"]["deltaBase64"].as_str().unwrap_or("")));
            if delta["params"]["done"] == true {
                break;
            }
            deltas += 1;
        }
        let headers = result["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|h| (h["name"].as_str().unwrap_or("").to_owned(), h["value"].as_str().unwrap_or("").to_owned()))
            .collect::<Vec<_>>();
        let is_sse = headers.iter().any(|(n, v)| n == "content-type" && v.starts_with("text/event-stream"));
        let events = if is_sse {
            sse_events(&bytes)
        } else if bytes.is_empty() {
            Vec::new()
        } else {
            vec![serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON: {e}"))]
        };
        Answer { status: result["status"].as_u64().unwrap_or(0), headers, events, deltas }
    }

    fn rpc(&mut self, method: &str, params: Value) -> Answer {
        self.next += 1;
        let message = json!({"jsonrpc":"2.0","id":self.next,"method":method,"params":params});
        self.exchange("POST", Some(&message))
    }
}

#[test]
fn an_mcp_session_through_the_executor() {
    let mcp = PyServer::start("mcp_server.py", &[]);
    let mut client =
        McpOverExecutor { server: Executor::ready(&[]), url: format!("http://127.0.0.1:{}/mcp", mcp.port), session: None, next: 0 };
    let init = client.rpc(
        "initialize",
        json!({"protocolVersion":PROTOCOL_VERSION,"capabilities":{},"clientInfo":{"name":"executor-tests","version":"1"}}),
    );
    assert_eq!(init.status, 200);
    let session = init.header("mcp-session-id").expect("an mcp-session-id header").to_owned();
    let result = init.events.iter().find(|e| e["id"].is_u64()).expect("initialize's answer");
    assert_eq!(result["result"]["serverInfo"]["name"], "executor-test-mcp");
    assert_eq!(result["result"]["protocolVersion"], PROTOCOL_VERSION);
    client.session = Some(session.clone());

    let initialized = client.exchange("POST", Some(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})));
    assert_eq!(initialized.status, 202);

    let list = client.rpc("tools/list", json!({}));
    let tools = list.events.iter().find_map(|e| e["result"]["tools"].as_array().cloned()).expect("tools");
    assert_eq!(tools.iter().map(|t| t["name"].clone()).collect::<Vec<_>>(), [json!("countdown")]);

    // The answer comes as server-sent events: three log notifications, then the result,
    // each forwarded as it was produced (they are 50 ms apart), not all at the end.
    let call = client.rpc("tools/call", json!({"name":"countdown","arguments":{"start":3}}));
    assert_eq!(call.header("content-type").map(|v| v.starts_with("text/event-stream")), Some(true));
    let logs: Vec<&Value> = call.events.iter().filter(|e| e["method"] == "notifications/message").collect();
    assert_eq!(logs.iter().map(|e| e["params"]["data"].clone()).collect::<Vec<_>>(), [json!("step 3"), json!("step 2"), json!("step 1")]);
    let last = call.events.last().expect("events");
    assert_eq!(last["result"]["content"][0]["text"], "liftoff after 3");
    assert!(call.deltas >= 4, "events were held back: {} deltas for {} events", call.deltas, call.events.len());

    // The GET event stream for server-initiated messages stays open beside the POSTs...
    let mut get_headers = client.headers();
    get_headers[1] = json!({"name":"Accept","value":"text/event-stream"});
    let get = client.server.send_request(
        "http/request",
        json!({"method":"GET","url":client.url,"headers":get_headers,"requestId":"events","streamResponse":true}),
    );
    let opened = client.server.response(get);
    assert_eq!(opened["result"]["status"], 200, "{opened}");

    // ...until the session's DELETE ends it; the server then refuses the session.
    let deleted = client.exchange("DELETE", None);
    assert_eq!(deleted.status, 200);
    let end = client.server.next_matching(|m| m["method"] == DELTA && m["params"]["requestId"] == "events" && m["params"]["done"] == true);
    assert!(end["params"]["error"].is_null(), "{end}");
    let after = client.rpc("tools/list", json!({}));
    assert_eq!(after.status, 404);
}

//! 200 concurrent websocket clients on one executor all complete with every byte of their
//! processes' output (the ws budget of docs/benchmarks-ws.md, without its timing).

use executor_tests::ws::WsServer;
use executor_tests::ws_load;

#[test]
fn two_hundred_concurrent_clients_lose_no_output() {
    let server = WsServer::start(&[]);
    let report = ws_load::run(&server.url, 200);
    assert!(report.failures.is_empty(), "{} of {} clients failed: {:#?}", report.failures.len(), report.clients, report.failures);
    assert_eq!(report.completed, 200);
}

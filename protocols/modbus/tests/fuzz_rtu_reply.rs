//! Fuzz target: any bytes a unit sends back on an RTU line are an error or a reply of exactly
//! the requested size that passed its CRC, never a panic and never data from a broken frame.
//! Runs as a test on stable (bolero), over its committed corpus in `tests/__fuzz__/*/corpus`
//! (real replies), then on random inputs for `BOLERO_RANDOM_TEST_TIME_MS` (1 s by default, 60 s
//! in `tests/run`); `cargo bolero test` fuzzes it with coverage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::request;
use shopfloor_modbus::driver::{ReadError, Reply};
use shopfloor_modbus::plan::ReadRequest;
use shopfloor_modbus::rtu::{self, REQUEST_LEN};
use shopfloor_modbus::rtu_line::RtuLine;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the line made of `reply` sent in answer to `req` for `unit`.
fn exchange(unit: u8, req: &ReadRequest, reply: Vec<u8>) -> Result<Reply, ReadError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, mut device) = tokio::io::duplex(4096);
        let mut line = RtuLine::new(Box::new(client), None);
        let device_task = async move {
            let mut frame = [0u8; REQUEST_LEN];
            if device.read_exact(&mut frame).await.is_err() {
                return;
            }
            let _ = device.write_all(&reply).await;
            // Keep the stream open until the line gave up.
            let _ = device.read(&mut [0u8; 1]).await;
        };
        let (result, _) = tokio::join!(
            line.read(unit, req, Duration::from_millis(20)),
            tokio::time::timeout(Duration::from_millis(50), device_task)
        );
        result
    })
}

#[test]
fn any_rtu_reply_bytes_are_an_error_or_a_checked_reply_of_the_right_size() {
    // Input: area, count, unit, a flag byte (bit 0: give the rest a good CRC, so that the
    // checks after the CRC are reached), then the bytes the unit sends.
    bolero::check!().for_each(|input: &[u8]| {
        let [area, count, unit, flags, body @ ..] = input else {
            return;
        };
        let req = request(*area, *count);
        let mut reply = body.to_vec();
        if flags & 1 == 1 {
            let crc = rtu::crc16(&reply);
            reply.extend_from_slice(&crc.to_le_bytes());
        }
        let sent = reply.clone();
        if let Ok(got) = exchange(*unit, &req, reply) {
            let len = rtu::reply_len(req.area, req.count);
            assert!(sent.len() >= len && rtu::crc_ok(&sent[..len]), "{sent:?}");
            assert_eq!(sent[0], *unit);
            match got {
                Reply::Registers(r) => assert_eq!(r.len(), usize::from(req.count)),
                Reply::Bits(b) => assert!(b.len() >= usize::from(req.count)),
            }
        }
    });
}

#[test]
fn a_good_frame_is_data_and_a_broken_one_an_error() {
    let req = request(0, 1); // holding, 2 registers
    let good = rtu::data_reply(7, 3, &[0x12, 0x34, 0xAB, 0xCD]);
    assert_eq!(
        exchange(7, &req, good.clone()).unwrap(),
        Reply::Registers(vec![0x1234, 0xABCD])
    );
    let mut broken = good.clone();
    broken[4] ^= 0x01;
    let e = exchange(7, &req, broken).unwrap_err();
    assert!(e.to_string().contains("wrong CRC"), "{e}");
    let e = exchange(8, &req, good.clone()).unwrap_err();
    assert!(
        e.to_string().contains("from unit 7, expected unit 8"),
        "{e}"
    );
    let e = exchange(7, &req, good[..6].to_vec()).unwrap_err();
    assert!(e.to_string().contains("cut short"), "{e}");
    let e = exchange(7, &req, Vec::new()).unwrap_err();
    assert!(e.to_string().contains("no answer within"), "{e}");
    let e = exchange(7, &req, rtu::exception_reply(7, 3, 2)).unwrap_err();
    assert!(matches!(e, ReadError::Exception { .. }), "{e}");
}

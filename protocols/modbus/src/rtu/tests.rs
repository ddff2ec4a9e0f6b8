#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

#[test]
fn request_frames_match_the_specification_examples() {
    // Read 10 holding registers of unit 1 from 0, and 1 input register of unit 17 from 8:
    // frames as the Modbus serial line guide and common device manuals print them.
    let table: [(u8, Area, u16, u16, [u8; 8]); 3] = [
        (
            1,
            Area::Holding,
            0,
            10,
            [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD],
        ),
        (
            17,
            Area::Input,
            8,
            1,
            [0x11, 0x04, 0x00, 0x08, 0x00, 0x01, 0xB2, 0x98],
        ),
        (
            1,
            Area::Coil,
            0,
            16,
            [0x01, 0x01, 0x00, 0x00, 0x00, 0x10, 0x3D, 0xC6],
        ),
    ];
    for (unit, area, start, count, frame) in table {
        assert_eq!(
            read_frame(unit, area, start, count),
            frame,
            "{unit} {area} {start}"
        );
        assert!(crc_ok(&frame));
        let call = parse_request(&frame).unwrap();
        assert_eq!((call.unit, call.start, call.count), (unit, start, count));
        assert_eq!(area_of(call.function), Some(area));
    }
}

#[test]
fn replies_that_answer_another_question_are_errors() {
    let good = data_reply(3, 0x03, &[0x00, 0x2A, 0x01, 0x00]);
    assert_eq!(
        parse_reply(3, Area::Holding, 2, &good),
        Ok(Answer::Data(vec![0x00, 0x2A, 0x01, 0x00]))
    );
    assert_eq!(registers(&[0x00, 0x2A, 0x01, 0x00]), vec![42, 256]);
    let cases: [(&str, Vec<u8>, FrameError); 5] = [
        (
            "another unit",
            data_reply(4, 0x03, &[0, 42, 1, 0]),
            FrameError::Unit {
                expected: 3,
                got: 4,
            },
        ),
        (
            "another function",
            data_reply(3, 0x04, &[0, 42, 1, 0]),
            FrameError::Function {
                expected: 3,
                got: 4,
            },
        ),
        (
            "cut short",
            good[..good.len() - 1].to_vec(),
            FrameError::Length {
                expected: 9,
                got: 8,
            },
        ),
        (
            "another count",
            data_reply(3, 0x03, &[0, 42]),
            FrameError::Length {
                expected: 9,
                got: 7,
            },
        ),
        (
            "bad crc",
            {
                let mut f = good.clone();
                let n = f.len();
                f[n - 1] ^= 0xFF;
                f
            },
            FrameError::Crc,
        ),
    ];
    for (what, frame, error) in cases {
        assert_eq!(
            parse_reply(3, Area::Holding, 2, &frame),
            Err(error),
            "{what}"
        );
    }
}

#[test]
fn an_exception_reply_is_the_device_answering() {
    let frame = exception_reply(9, 0x03, 2);
    assert_eq!(frame_len(&frame), Some(EXCEPTION_LEN));
    assert_eq!(
        parse_reply(9, Area::Holding, 4, &frame),
        Ok(Answer::Exception(2))
    );
    assert!(matches!(
        parse_reply(9, Area::Input, 4, &frame),
        Err(FrameError::Function { .. })
    ));
}

#[test]
fn line_timing_follows_the_serial_line_rules() {
    let even = LineTiming::new(19200, Parity::Even, 1);
    assert_eq!(even.bits_per_char, 11);
    // 3.5 characters of 11 bits at 19200 baud: 2.005 ms.
    assert_eq!(even.silence(), Duration::from_nanos(2_005_208));
    assert_eq!(
        LineTiming::new(115200, Parity::None, 1).silence(),
        Duration::from_micros(1750)
    );
    assert_eq!(LineTiming::new(9600, Parity::None, 2).bits_per_char, 11);
    assert_eq!(LineTiming::new(9600, Parity::None, 1).bits_per_char, 10);
    // Read 10 registers: 8 + 25 characters of 11 bits, and two silences.
    let ten = even.exchange(Area::Holding, 10);
    assert_eq!(ten, even.chars(33) + 2 * even.silence());
}

#[test]
fn bits_pack_and_unpack() {
    let b = [true, false, true, true, false, false, false, false, true];
    let packed = pack_bits(&b);
    assert_eq!(packed, vec![0b0000_1101, 0b0000_0001]);
    assert_eq!(&bits(&packed)[..9], &b);
}

proptest! {
    #[test]
    fn a_reply_parses_back_to_its_data(unit in 1u8..=247, count in 1u16..=125, seed: u64) {
        let regs: Vec<u16> = (0..count).map(|i| (seed >> (i % 48)) as u16 ^ i).collect();
        let frame = data_reply(unit, 0x03, &pack_registers(&regs));
        prop_assert_eq!(frame_len(&frame), Some(frame.len()));
        let Answer::Data(data) = parse_reply(unit, Area::Holding, count, &frame).unwrap() else {
            return Err(TestCaseError::fail("not data"));
        };
        prop_assert_eq!(registers(&data), regs);
    }

    #[test]
    fn a_flipped_bit_is_never_data(count in 1u16..=20, bit in 0usize..400) {
        let regs: Vec<u16> = (0..count).collect();
        let mut frame = data_reply(5, 0x03, &pack_registers(&regs));
        let bit = bit % (frame.len() * 8);
        frame[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(parse_reply(5, Area::Holding, count, &frame).is_err());
    }
}

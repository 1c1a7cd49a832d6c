//! Unit tests of `record.rs`.
use super::*;

#[test]
fn begin_request_body_matches_the_spec_layout() {
    // FCGI_BeginRequestBody: roleB1 roleB0 flags reserved[5] (§5.1).
    let body = BeginRequest {
        role: Role::Responder,
        keep_conn: true,
    };
    assert_eq!(body.to_bytes(), [0, 1, 1, 0, 0, 0, 0, 0]);
    let filter = BeginRequest {
        role: Role::Filter,
        keep_conn: false,
    };
    assert_eq!(filter.to_bytes(), [0, 3, 0, 0, 0, 0, 0, 0]);
    // Unknown flag bits and reserved bytes are ignored on the way in.
    let parsed = BeginRequest::from_bytes(&[0, 2, 0xff, 9, 9, 9, 9, 9]);
    assert_eq!(parsed.role, Role::Authorizer);
    assert!(parsed.keep_conn);
    assert_eq!(
        BeginRequest::from_bytes(&[0x12, 0x34, 0, 0, 0, 0, 0, 0]).role,
        Role::Unknown(0x1234)
    );
}

#[test]
fn end_request_body_matches_the_spec_layout() {
    // FCGI_EndRequestBody: appStatusB3..B0 protocolStatus reserved[3] (§5.5);
    // Appendix B example 3 ends with {938, FCGI_REQUEST_COMPLETE}.
    let body = EndRequest {
        app_status: 938,
        protocol_status: ProtocolStatus::RequestComplete,
    };
    assert_eq!(body.to_bytes(), [0, 0, 0x03, 0xaa, 0, 0, 0, 0]);
    for (byte, status) in [
        (0, ProtocolStatus::RequestComplete),
        (1, ProtocolStatus::CantMpxConn),
        (2, ProtocolStatus::Overloaded),
        (3, ProtocolStatus::UnknownRole),
        (200, ProtocolStatus::Unknown(200)),
    ] {
        let parsed = EndRequest::from_bytes(&[0xff, 0xff, 0xff, 0xff, byte, 1, 2, 3]);
        assert_eq!(parsed.protocol_status, status);
        assert_eq!(parsed.app_status, u32::MAX);
        assert_eq!(status.as_u8(), byte);
    }
}

#[test]
fn role_numbers_round_trip() {
    for n in [0u16, 1, 2, 3, 4, u16::MAX] {
        assert_eq!(Role::from_u16(n).as_u16(), n);
    }
}

fn header(ty: RecordType, id: u16, len: usize) -> Header {
    Header::new(ty, id, len as u16, 0)
}

#[test]
fn fixed_size_bodies_are_checked() {
    for ty in [
        RecordType::BeginRequest,
        RecordType::EndRequest,
        RecordType::UnknownType,
    ] {
        let id = if ty.is_management() { 0 } else { 1 };
        for len in [0usize, 7, 9, 16] {
            let err = Record::from_parts(&header(ty, id, len), Bytes::from(vec![0; len]));
            assert_eq!(
                err,
                Err(ProtoError::InvalidBodyLength {
                    record_type: ty,
                    len
                })
            );
        }
    }
    let abort = Record::from_parts(
        &header(RecordType::AbortRequest, 1, 1),
        Bytes::from_static(b"x"),
    );
    assert!(matches!(abort, Err(ProtoError::InvalidBodyLength { .. })));
}

#[test]
fn request_id_rules() {
    let err = Record::from_parts(&header(RecordType::GetValues, 3, 0), Bytes::new());
    assert_eq!(
        err,
        Err(ProtoError::ManagementRecordWithRequestId {
            record_type: RecordType::GetValues,
            request_id: 3
        })
    );
    let err = Record::from_parts(&header(RecordType::Stdout, 0, 0), Bytes::new());
    assert_eq!(
        err,
        Err(ProtoError::ApplicationRecordWithNullId(RecordType::Stdout))
    );
    // Unknown types may use any id; they are reported, not rejected.
    let rec = Record::from_parts(&header(RecordType::Unknown(42), 0, 1), Bytes::from("z"));
    assert_eq!(
        rec,
        Ok(Record::Unknown {
            record_type: 42,
            request_id: 0,
            data: Bytes::from("z")
        })
    );
}

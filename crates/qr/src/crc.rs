//! CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
//! XOR): the checksum EMVCo QRCPS-MPM puts in ID 63, over the payload's UTF-8 bytes up to
//! and including `6304`.

/// The CRC of `bytes`.
#[must_use]
pub fn crc16_ccitt_false(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The CRC as ID 63 carries it: four hexadecimal digits, uppercase.
#[must_use]
pub fn hex4(crc: u16) -> [u8; 4] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [
        HEX[usize::from(crc >> 12)],
        HEX[usize::from(crc >> 8 & 0xF)],
        HEX[usize::from(crc >> 4 & 0xF)],
        HEX[usize::from(crc & 0xF)],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogued_check_value() {
        // The CRC catalogue's check value for CRC-16/CCITT-FALSE.
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
        assert_eq!(crc16_ccitt_false(b""), 0xFFFF);
        assert_eq!(&hex4(0x29B1), b"29B1");
        assert_eq!(&hex4(0x0A0F), b"0A0F");
    }
}

//! CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
//! XOR): the checksum EMVCo QRCPS-MPM puts in ID 63, over the payload's UTF-8 bytes up to
//! and including `6304`.

/// `TABLES[k][x]`: the CRC (from a zero register) of byte `x` followed by `k` zero bytes.
/// `TABLES[0]` is the classic one-byte table; with all eight, eight bytes cost eight
/// independent lookups instead of a chain of eight dependent ones ("slicing by 8"), which is
/// what makes the CRC a small part of parsing a payload. Computed at compile time.
const TABLES: [[u16; 256]; 8] = {
    let mut t = [[0u16; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// The CRC of `bytes`.
///
/// The register folds into the first two bytes of each eight (the CRC is linear), and
/// byte `i` of the eight contributes `TABLES[7 - i]`.
#[must_use]
pub fn crc16_ccitt_false(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let [hi, lo] = crc.to_be_bytes();
        crc = TABLES[7][usize::from(c[0] ^ hi)]
            ^ TABLES[6][usize::from(c[1] ^ lo)]
            ^ TABLES[5][usize::from(c[2])]
            ^ TABLES[4][usize::from(c[3])]
            ^ TABLES[3][usize::from(c[4])]
            ^ TABLES[2][usize::from(c[5])]
            ^ TABLES[1][usize::from(c[6])]
            ^ TABLES[0][usize::from(c[7])];
    }
    chunks.remainder().iter().fold(crc, |crc, &b| (crc << 8) ^ TABLES[0][usize::from((crc >> 8) as u8 ^ b)])
}

/// The bit-at-a-time definition, for the tests to compare the table against.
#[cfg(test)]
fn bitwise(bytes: &[u8]) -> u16 {
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

    proptest::proptest! {
        #[test]
        fn the_table_gives_the_bitwise_definition(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            proptest::prop_assert_eq!(crc16_ccitt_false(&bytes), bitwise(&bytes));
        }
    }
}

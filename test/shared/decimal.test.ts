import { describe, expect, it } from 'vitest'
import { addDecimals, compareDecimals, isDecimalString, multiplyDecimals, roundDecimal, subtractDecimals, trimDecimal } from '../../src/shared/decimal.ts'

describe('exact decimals', () => {
  it('adds without binary-float drift', () => {
    expect(addDecimals(['0.1', '0.2'])).toBe('0.3')
    expect(addDecimals(Array.from({ length: 1000 }, () => '0.01'))).toBe('10.00')
    expect(addDecimals(['-5.25', '2', '0.125'])).toBe('-3.125')
    expect(addDecimals([])).toBe('0')
  })

  it('subtracts at the larger scale of the two', () => {
    expect(subtractDecimals('406.80', '6.8')).toBe('400.00')
    expect(subtractDecimals('0.3', '0.1')).toBe('0.2')
    expect(subtractDecimals('1', '2.50')).toBe('-1.50')
    expect(subtractDecimals('-0.05', '-0.05')).toBe('0.00')
    expect(() => subtractDecimals('1', ' 2')).toThrow('" 2" is not a decimal')
  })

  it('multiplies quantities by prices exactly', () => {
    expect(multiplyDecimals('3', '199.99')).toBe('599.97')
    expect(multiplyDecimals('1.5', '0.20')).toBe('0.300')
    expect(multiplyDecimals('-2', '0.05')).toBe('-0.10')
    expect(multiplyDecimals('123456789012345678', '100.01')).toBe('12346913469124691256.78')
  })

  it('trims trailing zeros down to a minimum scale, never rounding', () => {
    expect(trimDecimal('0.300', 2)).toBe('0.30')
    expect(trimDecimal('0.125', 2)).toBe('0.125')
    expect(trimDecimal('7', 2)).toBe('7.00')
    expect(trimDecimal('-1.5000', 2)).toBe('-1.50')
    expect(trimDecimal('2.0000000000', 0)).toBe('2')
    expect(trimDecimal('0.000', 0)).toBe('0')
  })

  it('rounds half away from zero when asked to', () => {
    expect(roundDecimal('0.125', 2)).toBe('0.13')
    expect(roundDecimal('-0.125', 2)).toBe('-0.13')
    expect(roundDecimal('0.124', 2)).toBe('0.12')
    expect(roundDecimal('5', 2)).toBe('5.00')
  })

  it('compares across scales', () => {
    expect(compareDecimals('1.10', '1.1')).toBe(0)
    expect(compareDecimals('1.01', '1.1')).toBe(-1)
    expect(compareDecimals('-1', '-2')).toBe(1)
  })

  it('accepts only plain decimal strings', () => {
    for (const ok of ['0', '-1', '199.00', '0.0001']) expect(isDecimalString(ok)).toBe(true)
    for (const bad of ['', '1e3', '1.', '.5', '1,00', ' 1', 'NaN', '0x10']) expect(isDecimalString(bad)).toBe(false)
    expect(() => addDecimals(['1e3'])).toThrow('"1e3" is not a decimal')
  })
})

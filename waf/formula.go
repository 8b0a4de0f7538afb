package waf

import "strings"

// A spreadsheet formula (=IF(A2>100, "high", "low"), =SUM(B2:B11)*(1+C1))
// is what a sheet, a budgeting tool or a CSV import stores in a cell. The
// CRS's SQL rules read IF(, SUM( and a comparison as a conditional
// injection (942230) or a function probe (942151), and libinjection may
// too. shapeFormula takes those rules' score back for a formula that
// cannot do what a SQL injection is for, reading data the statement did
// not ask for, argued from where the value can go:
//
//   - bare, a value that starts with = only continues a statement after an
//     operand the application wrote without an operator (WHERE col + v);
//     the only names a formula may hold are cell references (A2, $B$7,
//     Sheet1!C3:C9), TRUE and FALSE, and calls of spreadsheet functions that
//     compute on their arguments (formulaFunctions: no SLEEP, no SELECT,
//     no function that fetches or runs anything), so it can name no table
//     and no column but one called like a cell;
//   - in a quoted string, the text after the quote that closes it must
//     leave a statement no dialect parses (sqlBroken, as for sqlDead):
//     "high" inside the formula closes a "..." context, and high then
//     follows a string, which no dialect accepts.
//
// A formula with a function that reaches outside the sheet (HYPERLINK,
// WEBSERVICE, IMPORTXML, INDIRECT, a DDE call with |) is not one here, so
// its score stays: that is the CSV-injection side of the same value.

// spreadsheetFormula reports whether v is such a formula.
func spreadsheetFormula(v string) bool {
	if len(v) < 3 || len(v) > 2048 || v[0] != '=' {
		return false
	}
	depth, calls, last := 0, 0, byte('=')
	for i := 1; i < len(v); {
		c := v[i]
		switch {
		case c == ' ':
			i++
			continue
		case c == '"':
			j := i + 1
			for {
				n := strings.IndexByte(v[j:], '"')
				if n < 0 {
					return false
				}
				j += n + 1
				if j < len(v) && v[j] == '"' {
					j++ // "" is a quote inside the string
					continue
				}
				break
			}
			for _, b := range []byte(v[i+1 : j-1]) {
				if b < 0x20 || b == 0x7f || b == '\\' {
					return false
				}
			}
			i, last = j, 'v'
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(v) && (v[j] >= '0' && v[j] <= '9' || v[j] == '.') {
				j++
			}
			if j < len(v) && v[j] == ':' { // a row range, 1:3
				j++
				for j < len(v) && v[j] >= '0' && v[j] <= '9' {
					j++
				}
			}
			i, last = j, 'v'
		case c == '$' || isLetterByte(c) && c < 0x80:
			j := i
			for j < len(v) && (isLetterByte(v[j]) && v[j] < 0x80 || v[j] >= '0' && v[j] <= '9' || v[j] == '_' || v[j] == '.' || v[j] == '$') {
				j++
			}
			w := v[i:j]
			k := j
			for k < len(v) && v[k] == ' ' {
				k++
			}
			switch {
			case k < len(v) && v[k] == '(':
				if !formulaFunctions[strings.ToUpper(w)] {
					return false
				}
				calls++
				i, last = j, 'f'
				continue
			case strings.EqualFold(w, "TRUE") || strings.EqualFold(w, "FALSE"):
			case j < len(v) && v[j] == '!' && sheetName(w):
				// Sheet1!A1: the reference follows.
				j++
				e := cellRefEnd(v, j)
				if e < 0 {
					return false
				}
				j = e
			default:
				// The word must start a cell reference (B2, or B2 of
				// B2:B11) that ends where the reference does.
				e := cellRefEnd(v, i)
				if e < j {
					return false
				}
				j = e
			}
			i, last = j, 'v'
		case c == '(':
			if depth++; depth > 32 {
				return false
			}
			i, last = i+1, '('
		case c == ')':
			if depth--; depth < 0 {
				return false
			}
			i, last = i+1, 'v'
		case c == ',' || c == ';' && depth > 0:
			// ; separates arguments where the decimal mark is a comma;
			// outside parentheses it would separate SQL statements.
			i, last = i+1, ','
		case c == '%': // a percentage, 10%
			i++
		case strings.IndexByte("+-*/^&=<>", c) >= 0:
			i, last = i+1, 'o'
		default:
			return false
		}
	}
	if depth != 0 || calls == 0 && !strings.ContainsAny(v[1:], "+-*/^&<>") || last == 'o' || last == ',' {
		return false
	}
	// In a quoted string: what follows its closing quote must be broken.
	for _, q := range [...]byte{'\'', '"', ']'} {
		if rest, ok := afterClosingQuote(v, q); ok && !sqlBroken(rest, true) {
			return false
		}
	}
	return true
}

// cellRefEnd returns the end of the cell reference or range that starts
// at v[i] ($A$1, B2, AA10:AB20, C:C, 2:4 is read as numbers), or -1.
func cellRefEnd(v string, i int) int {
	// one returns the end of a reference's column letters and row digits
	// from i, and whether it had digits.
	one := func(i int) (int, bool) {
		j := i
		if j < len(v) && v[j] == '$' {
			j++
		}
		l := j
		for j < len(v) && j-l < 3 && (v[j]|0x20) >= 'a' && (v[j]|0x20) <= 'z' {
			j++
		}
		if j == l {
			return -1, false
		}
		if j < len(v) && v[j] == '$' {
			j++
		}
		d := j
		for j < len(v) && j-d < 7 && v[j] >= '0' && v[j] <= '9' {
			j++
		}
		return j, j > d
	}
	j, row := one(i)
	if j < 0 {
		return -1
	}
	if j < len(v) && v[j] == ':' {
		k, row2 := one(j + 1)
		if k < 0 || row != row2 {
			return -1
		}
		j = k
	} else if !row {
		return -1 // letters alone are a name, not a cell
	}
	if j < len(v) && (isLetterByte(v[j]) || v[j] >= '0' && v[j] <= '9' || v[j] == '_' || v[j] == '.' || v[j] == '$') {
		return -1
	}
	return j
}

// sheetName reports whether w can name a sheet before a ! (Sheet1, Q4_2026).
func sheetName(w string) bool {
	return w != "" && !strings.ContainsAny(w, "$.")
}

// formulaFunctions are spreadsheet functions that compute on their
// arguments (Excel's and Google Sheets' common ones). Functions that fetch,
// link or run something (HYPERLINK, WEBSERVICE, IMPORTXML, IMPORTDATA,
// IMAGE, FILTERXML, INDIRECT, CALL, REGISTER, INFO, CELL) are left out.
var formulaFunctions = func() map[string]bool {
	m := make(map[string]bool)
	for _, f := range strings.Fields(`
		SUM SUMIF SUMIFS SUMPRODUCT SUMSQ PRODUCT AVERAGE AVERAGEA AVERAGEIF AVERAGEIFS
		COUNT COUNTA COUNTBLANK COUNTIF COUNTIFS MIN MINA MINIFS MAX MAXA MAXIFS MEDIAN MODE
		STDEV STDEV.S STDEV.P VAR VAR.S VAR.P LARGE SMALL RANK RANK.EQ PERCENTILE QUARTILE CORREL
		ROUND ROUNDUP ROUNDDOWN MROUND INT TRUNC ABS SIGN MOD QUOTIENT POWER SQRT EXP LN LOG LOG10
		PI RAND RANDBETWEEN CEILING CEILING.MATH FLOOR FLOOR.MATH GCD LCM FACT
		IF IFS IFERROR IFNA AND OR NOT XOR SWITCH CHOOSE
		VLOOKUP HLOOKUP XLOOKUP LOOKUP INDEX MATCH XMATCH ROW ROWS COLUMN COLUMNS
		TRANSPOSE SORT SORTBY UNIQUE FILTER SEQUENCE
		LEFT RIGHT MID LEN LOWER UPPER PROPER TRIM CLEAN CONCAT CONCATENATE TEXTJOIN TEXT
		VALUE FIXED DOLLAR SUBSTITUTE REPLACE FIND SEARCH REPT EXACT
		TODAY NOW DATE DATEVALUE TIME TIMEVALUE YEAR MONTH DAY HOUR MINUTE SECOND WEEKDAY
		WEEKNUM ISOWEEKNUM EOMONTH EDATE NETWORKDAYS WORKDAY DATEDIF DAYS YEARFRAC
		ISBLANK ISNUMBER ISTEXT ISERROR ISERR ISNA ISLOGICAL ISEVEN ISODD NA
		PMT IPMT PPMT FV PV NPV XNPV IRR XIRR RATE NPER`) {
		m[f] = true
	}
	return m
}()

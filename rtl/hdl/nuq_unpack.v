// nuq_unpack: one b-bit weight index out of a packed W-bit weight word.
//
// FORMAT.md §6.3: a word holds L = floor(W / b) lanes, lane j in bits j*b .. j*b+b-1 (lane 0 in
// the low bits). With row_per_output every output channel starts a new word, so element j of
// row o is lane (j mod L) of word o*ceil(R/L) + j div L; the caller addresses the word, this
// unit selects the lane. Purely combinational (a barrel shifter and a mask).
`default_nettype none
module nuq_unpack #(
    parameter W = 64           // word width in bits (32..512)
) (
    input  wire [W-1:0] word,  // the packed word
    input  wire [3:0]   bits,  // index bits b, 1..8
    input  wire [8:0]   lane,  // lane j, < floor(W / b)
    output wire [7:0]   index  // lane j's index, zero-extended
);
    wire [12:0]  pos     = lane * bits;
    wire [W-1:0] shifted = word >> pos;
    wire [8:0]   mask    = (9'd1 << bits) - 9'd1;
    assign index = shifted[7:0] & mask[7:0];
endmodule
`default_nettype wire

// nuq_codebook_lut: a 2^b-entry codebook (index -> 8-bit level) with P read ports.
//
// Loaded one entry per cycle from a codebook memory image (`nuq export` codebook<i>, lane k =
// level k) before a layer runs; every MAC lane then decodes its weight index through it.
// Levels are stored as 8-bit two's complement (weights) or unsigned (activations); the
// consumer decides the interpretation.
`default_nettype none
module nuq_codebook_lut #(
    parameter P = 16,                // read ports
    parameter B = 8                  // index bits: 2^B entries
) (
    input  wire           clk,
    input  wire           we,        // write entry waddr
    input  wire [7:0]     waddr,
    input  wire [7:0]     wdata,
    input  wire [P*8-1:0] raddr,     // port p reads index raddr[8p +: 8]
    output wire [P*8-1:0] rdata      // ... and gets its level in rdata[8p +: 8]
);
    // a flat register vector (not a RAM): P read ports are P multiplexers over the entries
    reg [8*(1 << B)-1:0] table_q;
    always @(posedge clk)
        if (we) table_q[8*waddr[B-1:0] +: 8] <= wdata;
    genvar p;
    generate
        for (p = 0; p < P; p = p + 1) begin : port
            assign rdata[8*p +: 8] = table_q[8*raddr[8*p +: B] +: 8];
        end
    endgenerate
endmodule
`default_nettype wire
